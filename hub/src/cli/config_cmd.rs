//! `hub config show|check`.

use crate::config::Loaded;

/// Prints the effective configuration as TOML, secrets redacted.
pub fn show(loaded: &Loaded) {
    match &loaded.file {
        Some(f) => println!("# effective configuration: {} + environment + flags", f.display()),
        None => {
            println!("# effective configuration: defaults + environment + flags (no config file)")
        }
    }
    print!("{}", loaded.config.to_toml());
}

/// Reports a validated configuration: the summary a sysadmin wants before a restart.
pub fn check(loaded: &Loaded) {
    let c = &loaded.config;
    let source =
        loaded.file.as_ref().map_or_else(|| "defaults (no config file)".to_string(), |f| f.display().to_string());
    println!("configuration OK: {source}");
    println!("  web:   https on {}", c.web.bind);
    let store = match c.store.backend() {
        crate::config::Backend::Sqlite(p) => format!("sqlite {}", p.display()),
        crate::config::Backend::Mongo { database, .. } => {
            format!("mongodb {} database {database}", c.store.url.as_ref().map(ToString::to_string).unwrap_or_default())
        }
    };
    println!("  store: {store}");
    match &c.auth.issuer {
        Some(i) => println!("  auth:  OpenID Connect provider {i}"),
        None => println!("  auth:  demo sign-in (no identity provider; loopback only)"),
    }
    match &c.pbx.ami_url {
        Some(u) => println!("  pbx:   Asterisk at {u}"),
        None => println!("  pbx:   no Asterisk configured"),
    }
    if !loaded.warnings.is_empty() {
        println!("  {} warning(s), see above", loaded.warnings.len());
    }
}
