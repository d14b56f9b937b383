//! `apprentice KIND`: hosts a built-in apprentice kind (`navigator`, `witness`,
//! `synthesizer`, `curator`) in this
//! process. It is started by a supervisor (`apprentice_core::Apprentice::spawn`), which passes
//! the socket and the store in the environment; run by hand it explains that and exits.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match (args.next(), args.next()) {
        (Some(kind), None) if kind != "--help" && kind != "-h" => {
            apprentice_kinds::worker_main(&kind)
        }
        _ => {
            eprintln!(
                "usage: apprentice KIND   (KIND: navigator | witness | synthesizer | curator)\n\
                 Started by a supervisor, which sets MCS_APPRENTICE_SOCKET and MCS_APPRENTICE_STORE."
            );
            ExitCode::from(2)
        }
    }
}
