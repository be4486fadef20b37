//! The hub binary, built inside the test crate so that Cargo hands its fresh path to the
//! end-to-end tests (`CARGO_BIN_EXE_hub-e2e`). It runs exactly what `hub` runs.

fn main() -> std::process::ExitCode {
    hub::app::main()
}
