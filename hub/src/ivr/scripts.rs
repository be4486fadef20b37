//! Which script answers a dialled number, and each script compiled once: a cache keyed by
//! path that recompiles when the file's modified time or size changes. A lookup checks the
//! file (one `stat`); calls in progress keep the `Arc<AST>` they started with.
//!
//! Routes are plain data: to reload them, build a new [`Scripts`] from the new config (cheap:
//! nothing is compiled until a call asks).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rhai::{AST, Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

use super::error::{Result, ScriptError, ScriptFailure};
use super::sandbox::{self, Limits};

/// Scripts directory, routes and compiled scripts. A cheap `Clone` handle.
#[derive(Clone)]
pub struct Scripts {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    routes: BTreeMap<String, String>,
    /// Compiles only: no call API, same language restrictions as calls.
    compiler: Engine,
    cache: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    ast: Arc<AST>,
}

impl Scripts {
    /// Scripts in `dir`, reached through `routes` (dialled number → script name).
    pub fn new(dir: impl Into<PathBuf>, routes: BTreeMap<String, String>, limits: &Limits) -> Self {
        let mut compiler = sandbox::engine(limits);
        compiler.set_fail_on_invalid_map_property(false);
        Self { inner: Arc::new(Inner { dir: dir.into(), routes, compiler, cache: Mutex::new(HashMap::new()) }) }
    }

    /// The scripts directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The script for a dialled number.
    pub fn route(&self, dialled: &str) -> Result<&str> {
        self.inner.routes.get(dialled).map(String::as_str).ok_or_else(|| ScriptError::NoRoute(dialled.to_string()))
    }

    /// The compiled script `name` (relative to the scripts directory), recompiled when the
    /// file changed since the last lookup.
    pub fn get(&self, name: &str) -> Result<Arc<AST>> {
        let path = self.path(name)?;
        let meta = std::fs::metadata(&path)
            .map_err(|e| ScriptError::Unreadable { file: name.into(), message: e.to_string() })?;
        let (modified, len) = (meta.modified().ok(), meta.len());
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(name)
            && c.modified == modified
            && c.len == len
            && modified.is_some()
        {
            return Ok(c.ast.clone());
        }
        let ast = Arc::new(self.compile(name, &path)?);
        cache.insert(name.to_string(), Cached { modified, len, ast: ast.clone() });
        Ok(ast)
    }

    /// Compiles `name` without caching it (`hub ivr check`).
    pub fn check(&self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        self.compile(name, &path).map(|_| ())
    }

    fn compile(&self, name: &str, path: &Path) -> Result<AST> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScriptError::Unreadable { file: name.into(), message: e.to_string() })?;
        let mut ast = self.inner.compiler.compile(&text).map_err(|e| {
            let pos = e.position();
            ScriptError::Compile(ScriptFailure {
                file: name.to_string(),
                line: pos.line(),
                column: pos.position(),
                message: e.err_type().to_string(),
            })
        })?;
        ast.set_source(name);
        Ok(ast)
    }

    /// `name` inside the scripts directory: relative, no `..`, a `.rhai` file.
    fn path(&self, name: &str) -> Result<PathBuf> {
        let p = Path::new(name);
        let inside = p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside || !name.ends_with(".rhai") {
            return Err(ScriptError::BadName(name.to_string()));
        }
        Ok(self.inner.dir.join(p))
    }
}

/// Resolves `import "name"` to the sibling script `name.rhai`, through the cache. Nothing
/// else is reachable: no paths, no `..`. One per call, so a module imported twice in a call
/// is evaluated once.
pub(crate) struct ImportResolver {
    scripts: Scripts,
    loaded: Mutex<HashMap<String, Shared<Module>>>,
}

impl ImportResolver {
    pub(crate) fn new(scripts: Scripts) -> Self {
        Self { scripts, loaded: Mutex::new(HashMap::new()) }
    }
}

impl ModuleResolver for ImportResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> std::result::Result<Shared<Module>, Box<EvalAltResult>> {
        let plain = !path.is_empty() && path.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !plain {
            return Err(EvalAltResult::ErrorModuleNotFound(
                format!("{path} (import takes the name of a script beside this one, without .rhai)"),
                pos,
            )
            .into());
        }
        if let Some(m) = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            return Ok(m.clone());
        }
        let name = format!("{path}.rhai");
        let ast = self.scripts.get(&name).map_err(|e| match e {
            ScriptError::Unreadable { .. } => EvalAltResult::ErrorModuleNotFound(path.to_string(), pos).into(),
            other => Box::new(EvalAltResult::ErrorInModule(
                path.to_string(),
                EvalAltResult::ErrorRuntime(other.to_string().into(), Position::NONE).into(),
                pos,
            )),
        })?;
        let mut module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.to_string(), e, pos)))?;
        module.set_id(name);
        let module: Shared<Module> = module.into();
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_string(), module.clone());
        Ok(module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scripts(dir: &Path) -> Scripts {
        Scripts::new(dir, BTreeMap::from([("800".into(), "menu.rhai".into())]), &Limits::default())
    }

    #[test]
    fn a_changed_file_is_recompiled_and_running_calls_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("menu.rhai");
        std::fs::write(&file, "1").unwrap();
        let s = scripts(dir.path());
        let before = s.get("menu.rhai").unwrap();
        assert!(Arc::ptr_eq(&before, &s.get("menu.rhai").unwrap()), "unchanged: the same AST");
        std::fs::write(&file, "40 + 2").unwrap(); // a different size, whatever the clock says
        let after = s.get("menu.rhai").unwrap();
        let engine = Engine::new_raw();
        assert_eq!(engine.eval_ast::<i64>(&after).unwrap(), 42);
        assert_eq!(engine.eval_ast::<i64>(&before).unwrap(), 1, "the AST a call holds is unchanged");
        assert_eq!(s.route("800").unwrap(), "menu.rhai");
        assert!(matches!(s.route("801"), Err(ScriptError::NoRoute(_))));
    }

    #[test]
    fn names_stay_inside_the_directory_and_errors_have_positions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.rhai"), "let x = 1;\nlet y = ;\n").unwrap();
        let s = scripts(dir.path());
        for bad in ["../x.rhai", "/etc/x.rhai", "x.txt"] {
            assert!(matches!(s.get(bad), Err(ScriptError::BadName(_))), "{bad}");
        }
        let Err(ScriptError::Compile(f)) = s.get("bad.rhai") else { panic!("compiles") };
        assert_eq!((f.file.as_str(), f.line, f.column), ("bad.rhai", Some(2), Some(9)));
    }
}
