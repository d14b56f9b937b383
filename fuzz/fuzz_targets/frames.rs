//! The apprentice frame decoder on arbitrary bytes: a message or a typed error, never a panic,
//! never an allocation beyond the frame cap.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = apprentice_core::transport::read_frame(data);
    let _ = apprentice_core::transport::decode(data);
});
