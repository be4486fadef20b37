//! The Handlebars templates the Asterisk config is rendered with: built into the binary from
//! `asterisk-conf-templates/*.hbs`, each overridable by a file of the same name in a directory
//! the sysadmin configures.
//!
//! The registry is strict (a field a template names but the context lacks is an error, not an
//! empty string) and escapes every `{{value}}` with [`conf_value::escape`]. Templates may not
//! use `{{{…}}}` or `{{&…}}`, which would skip that escaping.

use std::path::{Path, PathBuf};

use handlebars::template::{Template, TemplateElement};
use handlebars::{Handlebars, TemplateError};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::conf_value;
use super::render::RenderError;

/// Which template: one per concern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TemplateName {
    /// One user's endpoint, auth and AOR ([`super::PjsipUser`]).
    PjsipUser,
    /// The hub's own user agent ([`super::PjsipTrunk`]).
    PjsipTrunk,
    /// The dialplan ([`super::Dialplan`]).
    Extensions,
}

impl TemplateName {
    /// Every template, in fingerprint order.
    pub const ALL: [TemplateName; 3] = [Self::PjsipUser, Self::PjsipTrunk, Self::Extensions];

    /// The name in the registry, and the file stem (`pjsip-user.hbs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PjsipUser => "pjsip-user",
            Self::PjsipTrunk => "pjsip-trunk",
            Self::Extensions => "extensions",
        }
    }

    /// The built-in template text: the starting point for an override.
    pub fn builtin_source(self) -> &'static str {
        match self {
            Self::PjsipUser => include_str!("../../../asterisk-conf-templates/pjsip-user.hbs"),
            Self::PjsipTrunk => include_str!("../../../asterisk-conf-templates/pjsip-trunk.hbs"),
            Self::Extensions => include_str!("../../../asterisk-conf-templates/extensions.hbs"),
        }
    }

    fn from_stem(stem: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == stem)
    }
}

/// Where a template in use came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateOrigin {
    /// Built into the binary.
    Builtin,
    /// A sysadmin's override file.
    Override(PathBuf),
}

/// The compiled templates in use and their fingerprint. Cheap to share behind an `Arc`
/// (`Send + Sync`); build it once and render many times.
pub struct Templates {
    registry: Handlebars<'static>,
    origins: [TemplateOrigin; 3],
    fingerprint: String,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("origins", &self.origins).field("fingerprint", &self.fingerprint).finish()
    }
}

impl Templates {
    /// The templates built into the binary.
    pub fn builtin() -> Self {
        Self::load(None).expect("the built-in templates compile (tested)")
    }

    /// The built-in templates, with every `<name>.hbs` in `override_dir` used instead of the
    /// built-in template of that name. A file that is not one of the templates, or a template
    /// that does not compile, is an error naming the file (and the line).
    pub fn load(override_dir: Option<&Path>) -> Result<Self, RenderError> {
        let mut sources: Vec<(TemplateName, TemplateOrigin, String)> =
            TemplateName::ALL.iter().map(|t| (*t, TemplateOrigin::Builtin, t.builtin_source().to_string())).collect();
        if let Some(dir) = override_dir {
            for (name, path, text) in read_overrides(dir)? {
                let slot = sources.iter_mut().find(|(t, _, _)| *t == name).expect("every name has a slot");
                *slot = (name, TemplateOrigin::Override(path), text);
            }
        }

        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(conf_value::escape);
        let mut hasher = Sha256::new();
        for (name, origin, text) in &sources {
            let file = match origin {
                TemplateOrigin::Builtin => PathBuf::from(format!("asterisk-conf-templates/{}.hbs", name.as_str())),
                TemplateOrigin::Override(path) => path.clone(),
            };
            registry.register_template_string(name.as_str(), text).map_err(|e| syntax_error(&file, &e))?;
            let template = registry.get_template(name.as_str()).expect("just registered");
            if let Some(line) = unescaped_output(template) {
                return Err(RenderError::Unescaped { file, line });
            }
            hasher.update(name.as_str().as_bytes());
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        let origins = sources.into_iter().map(|(_, origin, _)| origin).collect::<Vec<_>>();
        Ok(Self {
            registry,
            origins: origins.try_into().expect("three templates"),
            fingerprint: hex::encode(hasher.finalize()),
        })
    }

    /// SHA-256 (hex) over every template source in use: part of every user's revision, so a
    /// template change re-provisions everyone.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Where `name` came from (for `hub pbx` output and logs).
    pub fn origin(&self, name: TemplateName) -> &TemplateOrigin {
        let i = TemplateName::ALL.iter().position(|t| *t == name).expect("every name is in ALL");
        &self.origins[i]
    }

    /// Renders `name` with `context` and appends the text to `out`.
    pub(super) fn render_into<C: Serialize>(
        &self,
        name: TemplateName,
        context: &C,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        self.registry
            .render_to_write(name.as_str(), context, out)
            .map_err(|e| RenderError::Render { template: self.origin_file(name), message: e.to_string() })
    }

    fn origin_file(&self, name: TemplateName) -> String {
        match self.origin(name) {
            TemplateOrigin::Builtin => format!("{}.hbs (built in)", name.as_str()),
            TemplateOrigin::Override(path) => path.display().to_string(),
        }
    }
}

/// The `*.hbs` files in `dir`; hidden files (editor swap files) are skipped.
fn read_overrides(dir: &Path) -> Result<Vec<(TemplateName, PathBuf, String)>, RenderError> {
    let io_err = |source| RenderError::TemplateDir { dir: dir.to_path_buf(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(stem) = file_name.strip_suffix(".hbs") else { continue };
        if file_name.starts_with('.') || !path.is_file() {
            continue;
        }
        let Some(name) = TemplateName::from_stem(stem) else {
            return Err(RenderError::UnknownTemplate { file: path });
        };
        let text = std::fs::read_to_string(&path).map_err(|source| RenderError::Read { path: path.clone(), source })?;
        out.push((name, path, text));
    }
    Ok(out)
}

fn syntax_error(file: &Path, e: &TemplateError) -> RenderError {
    RenderError::TemplateSyntax {
        file: file.to_path_buf(),
        line: e.pos().map(|(line, _)| line),
        column: e.pos().map(|(_, column)| column),
        reason: e.reason().to_string(),
    }
}

/// The line of the first `{{{…}}}` / `{{&…}}` in `t` (searching block bodies too).
fn unescaped_output(t: &Template) -> Option<usize> {
    for (i, element) in t.elements.iter().enumerate() {
        let line = t.mapping.get(i).map_or(0, |m| m.0);
        let inner: Vec<&Template> = match element {
            TemplateElement::HtmlExpression(_) => return Some(line),
            TemplateElement::HelperBlock(h) | TemplateElement::Expression(h) => {
                h.template.iter().chain(h.inverse.iter()).collect()
            }
            TemplateElement::DecoratorBlock(d) | TemplateElement::PartialBlock(d) => d.template.iter().collect(),
            _ => Vec::new(),
        };
        if let Some(line) = inner.into_iter().find_map(unescaped_output) {
            return Some(line);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn builtin_templates_compile_and_are_shareable() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Templates>();
        let t = Templates::builtin();
        assert_eq!(t.fingerprint().len(), 64);
        assert!(TemplateName::ALL.iter().all(|n| t.origin(*n) == &TemplateOrigin::Builtin));
        assert_eq!(Templates::load(None).unwrap().fingerprint(), t.fingerprint(), "stable");
    }

    #[test]
    fn an_override_replaces_only_its_template_and_changes_the_fingerprint() {
        let dir = dir_with(&[("pjsip-trunk.hbs", "[{{name}}]\ntype=endpoint\n"), ("README.md", "not a template")]);
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(t.origin(TemplateName::PjsipTrunk), &TemplateOrigin::Override(dir.path().join("pjsip-trunk.hbs")));
        assert_eq!(t.origin(TemplateName::PjsipUser), &TemplateOrigin::Builtin);
        assert_ne!(t.fingerprint(), Templates::builtin().fingerprint());
        let empty = dir_with(&[]);
        assert_eq!(Templates::load(Some(empty.path())).unwrap().fingerprint(), Templates::builtin().fingerprint());
    }

    #[test]
    fn a_broken_override_is_an_error_naming_file_and_line() {
        let dir = dir_with(&[("extensions.hbs", "[{{users_context}}]\ninclude => {{#if x}}\n")]);
        let e = Templates::load(Some(dir.path())).unwrap_err();
        let RenderError::TemplateSyntax { file, line, .. } = &e else { panic!("{e:?}") };
        assert_eq!(file, &dir.path().join("extensions.hbs"));
        assert!(line.is_some(), "{e}");
        let text = e.to_string();
        assert!(text.contains("extensions.hbs") && text.contains("line"), "{text}");
    }

    #[test]
    fn unknown_files_and_missing_directories_are_errors() {
        let dir = dir_with(&[("pjsip-users.hbs", "typo in the name")]);
        let e = Templates::load(Some(dir.path())).unwrap_err();
        assert!(matches!(e, RenderError::UnknownTemplate { .. }), "{e:?}");
        assert!(e.to_string().contains("pjsip-user.hbs"), "lists the known names: {e}");
        let e = Templates::load(Some(&dir.path().join("nope"))).unwrap_err();
        assert!(matches!(e, RenderError::TemplateDir { .. }), "{e:?}");
    }

    #[test]
    fn unescaped_output_is_refused_anywhere() {
        for text in [
            "password={{{password}}}\n",
            "password={{&password}}\n",
            "{{#if transport}}\ntransport={{{transport}}}\n{{/if}}\n",
            "{{#each users}}\n{{else}}\n{{{x}}}\n{{/each}}\n",
        ] {
            let dir = dir_with(&[("pjsip-user.hbs", text)]);
            let e = Templates::load(Some(dir.path())).unwrap_err();
            assert!(matches!(e, RenderError::Unescaped { .. }), "{text}: {e:?}");
        }
    }

    #[test]
    fn every_value_goes_through_the_escape_function() {
        #[derive(Serialize)]
        struct Ctx {
            v: &'static str,
        }
        let dir = dir_with(&[("pjsip-trunk.hbs", "x={{v}}\n{{#if v}}y={{v}}{{/if}}\n")]);
        let t = Templates::load(Some(dir.path())).unwrap();
        let mut out = Vec::new();
        t.render_into(TemplateName::PjsipTrunk, &Ctx { v: "a;b\n[evil]\n#include x" }, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "x=a\\;b [evil] #include x\ny=a\\;b [evil] #include x\n");
    }

    #[test]
    fn strict_mode_refuses_missing_fields() {
        #[derive(Serialize)]
        struct Ctx {
            v: u32,
        }
        let dir = dir_with(&[("pjsip-trunk.hbs", "x={{v}}\ny={{nope}}\n")]);
        let t = Templates::load(Some(dir.path())).unwrap();
        let e = t.render_into(TemplateName::PjsipTrunk, &Ctx { v: 1 }, &mut Vec::new()).unwrap_err();
        assert!(matches!(&e, RenderError::Render { template, .. } if template.ends_with("pjsip-trunk.hbs")), "{e:?}");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
