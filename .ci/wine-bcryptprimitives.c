// Stub of bcryptprimitives.dll for wine 8, which lacks it: ProcessPrng over RtlGenRandom
// (Rust's std imports ProcessPrng on Windows since 1.78). Built by .ci/wine-tests.
#include <windows.h>
#define RtlGenRandom SystemFunction036
BOOLEAN NTAPI SystemFunction036(PVOID RandomBuffer, ULONG RandomBufferLength);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, n)) return FALSE;
        data += n; len -= n;
    }
    return TRUE;
}
