//! The `hub` binary: everything happens in [`hub::app`].

fn main() -> std::process::ExitCode {
    hub::app::main()
}
