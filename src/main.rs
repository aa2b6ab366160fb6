//! The `muse` binary: argument parsing and output over the `muse_store`
//! library. The command line is one embedder of the library among others: it
//! uses only the library's public API.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Ctrl-C or a TERM removes this process's temp files before it exits.
    if let Err(e) = muse_store::remove_temp_files_on_signals() {
        eprintln!("muse: warning: could not install the interrupt handler: {e}");
    }
    let stdout = std::io::stdout();
    // stderr is not locked for the whole run: `fsck`'s progress bar draws
    // to it from rayon worker threads, which would block forever on a lock
    // held by this thread while it waits for them.
    let mut stderr = std::io::stderr();
    let code = cli::run(std::env::args_os(), &mut stdout.lock(), &mut stderr);
    ExitCode::from(code)
}
