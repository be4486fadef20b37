//! `hub ivr check|simulate|test`: compile scripts, run one against a simulated caller, and
//! run the script tests, all without SIP or audio.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::ivr::io::CallerInfo;
use crate::ivr::simulate::{self, Fixture, Simulation};
use crate::ivr::{CallOutcome, Limits, Scripts, testfile};

use super::{Exit, IvrCommand};

/// Runs `hub ivr …` with the loaded configuration.
pub fn run(command: IvrCommand, config: &Config) -> Exit {
    let limits = Limits::new(&config.ivr, &config.voicemail);
    match command {
        IvrCommand::Check { files } => check(config, &limits, &files),
        IvrCommand::Simulate { script, digits, caller, dialled, http } => {
            simulate(config, &limits, &script, &digits, caller, dialled, http.as_deref())
        }
        IvrCommand::Test { files } => test(config, &limits, &files),
    }
}

fn scripts(config: &Config, limits: &Limits) -> Scripts {
    Scripts::new(&config.ivr.scripts_dir, config.ivr.routes.clone(), limits)
}

/// A script given on the command line: an existing file runs from its own directory (its
/// imports are its siblings); anything else is a name inside `scripts_dir`.
fn locate(config: &Config, limits: &Limits, script: &Path) -> (Scripts, String) {
    if script.is_file()
        && let Some(name) = script.file_name().and_then(|n| n.to_str())
    {
        let dir = script.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return (Scripts::new(dir, config.ivr.routes.clone(), limits), name.to_string());
    }
    (scripts(config, limits), script.display().to_string())
}

/// Files in `dir` ending with `.ext`, sorted; empty when `dir` cannot be read.
fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn check(config: &Config, limits: &Limits, files: &[PathBuf]) -> Exit {
    let files = if files.is_empty() { files_in(&config.ivr.scripts_dir, "rhai") } else { files.to_vec() };
    if files.is_empty() {
        eprintln!("error: no *.rhai scripts in {}", config.ivr.scripts_dir.display());
        return Exit::Failure;
    }
    let mut failed = 0;
    for file in &files {
        let (scripts, name) = locate(config, limits, file);
        if let Err(e) = scripts.check(&name) {
            failed += 1;
            let mut f = e.failure();
            f.file = file.display().to_string();
            println!("{f}");
        }
    }
    println!("{} script{} checked, {failed} failed", files.len(), if files.len() == 1 { "" } else { "s" });
    if failed == 0 { Exit::Ok } else { Exit::Failure }
}

fn simulate(
    config: &Config,
    limits: &Limits,
    script: &Path,
    digits: &str,
    caller: Option<String>,
    dialled: Option<String>,
    fixture: Option<&Path>,
) -> Exit {
    let inputs = match simulate::parse_inputs(digits) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: --digits: {e}");
            return Exit::Config;
        }
    };
    let fixture = match fixture.map(|p| std::fs::read_to_string(p).map(|t| (p, t))) {
        None => Fixture::default(),
        Some(Err(e)) => {
            eprintln!("error: --http: {e}");
            return Exit::Config;
        }
        Some(Ok((p, text))) => match Fixture::from_json(&text) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return Exit::Config;
            }
        },
    };
    let (scripts, name) = locate(config, limits, script);
    let dialled = dialled.unwrap_or_else(|| {
        config.ivr.routes.iter().find(|(_, s)| **s == name).map(|(n, _)| n.clone()).unwrap_or_default()
    });
    let caller = CallerInfo {
        number: caller.unwrap_or_else(|| "+15555550100".into()),
        path: "sim".into(),
        dialled,
        ..CallerInfo::default()
    };
    let sim = Simulation::new(inputs, caller, fixture, true);
    match sim.run(&scripts, &name, limits) {
        Ok(CallOutcome::Failed(_)) => Exit::Failure,
        Ok(_) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

fn test(config: &Config, limits: &Limits, files: &[PathBuf]) -> Exit {
    let files = if files.is_empty() { files_in(&config.ivr.scripts_dir.join("tests"), "toml") } else { files.to_vec() };
    if files.is_empty() {
        eprintln!("error: no tests in {}", config.ivr.scripts_dir.join("tests").display());
        return Exit::Failure;
    }
    let scripts = scripts(config, limits);
    let mut failed = 0;
    for file in &files {
        match testfile::run(&scripts, file, limits) {
            Ok(r) if r.passed => println!("ok    {}", r.file),
            Ok(r) => {
                failed += 1;
                println!("FAIL  {}", r.file);
                print!("{}", r.diff.unwrap_or_default());
            }
            Err(e) => {
                failed += 1;
                println!("FAIL  {e}");
            }
        }
    }
    println!("{} passed, {failed} failed", files.len() - failed);
    if failed == 0 { Exit::Ok } else { Exit::Failure }
}
