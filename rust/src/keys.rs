//! Storage-key rewriting for per-project scoping.
//!
//! A resource prefix such as `/registry/configmaps` owns every key below it on a path-segment
//! boundary. Scoping inserts one segment right after the prefix:
//!
//! * `<prefix>/clusters/<project>/...` for a project,
//! * `<prefix>/root/...` for the root (unscoped) tenant.
//!
//! The pure-Rust functions here take and return plain strings so `cargo test` covers them; the
//! `py` submodule wraps them for Python.

use std::borrow::Cow;
use std::fmt;

/// Segment inserted after the resource prefix for project-scoped keys.
pub const CLUSTERS_SEGMENT: &str = "clusters";
/// Segment inserted after the resource prefix for root (unscoped) keys.
pub const ROOT_SEGMENT: &str = "root";
/// Longest project id (DNS-1123 label limit).
pub const MAX_PROJECT_LEN: usize = 63;

/// Why a key operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The project id is not a DNS-1123 label.
    InvalidProject(String),
    /// The key is not a scoped key of this resource prefix.
    NotScoped { key: String, prefix: String },
}

/// How many characters of a rejected value a message quotes.
const QUOTE_LIMIT: usize = 80;

fn quoted(s: &str) -> String {
    if s.chars().count() <= QUOTE_LIMIT {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(QUOTE_LIMIT).collect();
        format!("{head:?}...")
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::InvalidProject(id) => write!(
                f,
                "invalid project id {}: must be a DNS-1123 label (lowercase alphanumerics or \"-\", \
                 1-63 characters, starting and ending with an alphanumeric)",
                quoted(id)
            ),
            KeyError::NotScoped { key, prefix } => write!(
                f,
                "key {} is not a scoped key of {}: expected {}/{}/<project>/... or {}/{}/...",
                quoted(key),
                quoted(prefix),
                prefix,
                CLUSTERS_SEGMENT,
                prefix,
                ROOT_SEGMENT
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// True when `s` is a DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
#[inline]
pub fn is_valid_project_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > MAX_PROJECT_LEN {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    alnum(b[0]) && alnum(b[b.len() - 1]) && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// `Ok(())` for a valid project id, [`KeyError::InvalidProject`] otherwise.
#[inline]
pub fn validate_project_id(s: &str) -> Result<(), KeyError> {
    if is_valid_project_id(s) {
        Ok(())
    } else {
        Err(KeyError::InvalidProject(s.to_owned()))
    }
}

/// The resource prefix without trailing slashes (`/registry/configmaps/` -> `/registry/configmaps`).
#[inline]
pub fn normalize_prefix(resource_prefix: &str) -> &str {
    resource_prefix.trim_end_matches('/')
}

/// Where a key sits relative to a (normalized) resource prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Under<'a> {
    /// Not below the prefix on a segment boundary.
    Outside,
    /// The prefix itself, with or without one trailing slash.
    Bare,
    /// Below the prefix; the part after `<prefix>/`.
    Rest(&'a str),
}

#[inline]
fn split_under<'a>(key: &'a str, prefix: &str) -> Under<'a> {
    match key.strip_prefix(prefix) {
        None => Under::Outside,
        Some("") | Some("/") => Under::Bare,
        Some(tail) => match tail.strip_prefix('/') {
            Some(rest) => Under::Rest(rest),
            // "/registry/configmapsX/a" shares bytes with the prefix but not a segment boundary.
            None => Under::Outside,
        },
    }
}

/// The scope segment (without slashes around it) for `project`, validated.
#[inline]
fn scope_segment(project: Option<&str>) -> Result<(&'static str, Option<&str>), KeyError> {
    match project {
        None => Ok((ROOT_SEGMENT, None)),
        Some(p) => {
            validate_project_id(p)?;
            Ok((CLUSTERS_SEGMENT, Some(p)))
        }
    }
}

/// A precomputed scope: the normalized prefix and the full scope prefix
/// (`<prefix>/clusters/<project>/` or `<prefix>/root/`). Batch forms build one and reuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    prefix_len: usize,
    scope_prefix: String,
}

impl Scope {
    /// Validate `project` and build the scope for `resource_prefix`.
    pub fn new(resource_prefix: &str, project: Option<&str>) -> Result<Self, KeyError> {
        let prefix = normalize_prefix(resource_prefix);
        let (segment, project) = scope_segment(project)?;
        let mut scope_prefix = String::with_capacity(
            prefix.len() + segment.len() + project.map_or(0, |p| p.len() + 1) + 2,
        );
        scope_prefix.push_str(prefix);
        scope_prefix.push('/');
        scope_prefix.push_str(segment);
        scope_prefix.push('/');
        if let Some(p) = project {
            scope_prefix.push_str(p);
            scope_prefix.push('/');
        }
        Ok(Scope {
            prefix_len: prefix.len(),
            scope_prefix,
        })
    }

    /// The normalized resource prefix.
    #[inline]
    pub fn prefix(&self) -> &str {
        &self.scope_prefix[..self.prefix_len]
    }

    /// `<prefix>/clusters/<project>/` or `<prefix>/root/`.
    #[inline]
    pub fn scope_prefix(&self) -> &str {
        &self.scope_prefix
    }

    /// Rewrite `key` into `out` (cleared first). Returns false, leaving `out` empty, when the key
    /// is not under the prefix and must be passed through unchanged.
    #[inline]
    pub fn rewrite_into(&self, key: &str, out: &mut String) -> bool {
        out.clear();
        match split_under(key, self.prefix()) {
            Under::Outside => false,
            Under::Bare => {
                out.push_str(&self.scope_prefix);
                true
            }
            Under::Rest(rest) => {
                out.reserve(self.scope_prefix.len() + rest.len());
                out.push_str(&self.scope_prefix);
                out.push_str(rest);
                true
            }
        }
    }

    /// Rewrite `key`, borrowing it when it is not under the prefix.
    pub fn rewrite<'k>(&self, key: &'k str) -> Cow<'k, str> {
        let mut out = String::new();
        if self.rewrite_into(key, &mut out) {
            Cow::Owned(out)
        } else {
            Cow::Borrowed(key)
        }
    }
}

/// `<prefix>/clusters/<project>/`, or `<prefix>/root/` when `project` is `None`.
pub fn scope_prefix(resource_prefix: &str, project: Option<&str>) -> Result<String, KeyError> {
    Scope::new(resource_prefix, project).map(|s| s.scope_prefix)
}

/// Insert the scope segment after the resource prefix. Keys not under the prefix (on a
/// path-segment boundary) are returned unchanged; the bare prefix maps to the scope prefix.
pub fn scoped_key<'k>(
    key: &'k str,
    resource_prefix: &str,
    project: Option<&str>,
) -> Result<Cow<'k, str>, KeyError> {
    Ok(Scope::new(resource_prefix, project)?.rewrite(key))
}

/// The project a scoped key belongs to: `Some(project)` for `<prefix>/clusters/<project>[/...]`,
/// `None` for `<prefix>/root[/...]`. Any other key is an error: a key under the prefix with
/// neither segment, a key outside the prefix, or an empty/invalid project segment.
pub fn project_of_key<'k>(
    key: &'k str,
    resource_prefix: &str,
) -> Result<Option<&'k str>, KeyError> {
    let prefix = normalize_prefix(resource_prefix);
    let not_scoped = || KeyError::NotScoped {
        key: key.to_owned(),
        prefix: prefix.to_owned(),
    };
    let rest = match split_under(key, prefix) {
        Under::Rest(rest) => rest,
        Under::Outside | Under::Bare => return Err(not_scoped()),
    };
    let (segment, tail) = match rest.split_once('/') {
        Some((segment, tail)) => (segment, Some(tail)),
        None => (rest, None),
    };
    if segment == ROOT_SEGMENT {
        return Ok(None);
    }
    if segment != CLUSTERS_SEGMENT {
        return Err(not_scoped());
    }
    let project = match tail {
        Some(tail) => tail.split_once('/').map_or(tail, |(p, _)| p),
        None => "",
    };
    validate_project_id(project)?;
    Ok(Some(project))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/registry/configmaps";

    #[test]
    fn project_ids() {
        for ok in ["a", "0", "p1", "a-b", "a--b", "9z", &"a".repeat(63)] {
            assert!(is_valid_project_id(ok), "{ok}");
            assert_eq!(validate_project_id(ok), Ok(()));
        }
        for bad in [
            "",
            "A",
            "-a",
            "a-",
            "-",
            "a_b",
            "a.b",
            "a/b",
            "é",
            " a",
            &"a".repeat(64),
        ] {
            assert!(!is_valid_project_id(bad), "{bad:?}");
            assert_eq!(
                validate_project_id(bad),
                Err(KeyError::InvalidProject(bad.to_owned()))
            );
        }
    }

    #[test]
    fn invalid_project_message_names_the_rule() {
        let msg = validate_project_id("A").unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid project id \"A\": must be a DNS-1123 label (lowercase alphanumerics or \
             \"-\", 1-63 characters, starting and ending with an alphanumeric)"
        );
        let long = "X".repeat(500);
        let msg = validate_project_id(&long).unwrap_err().to_string();
        assert!(msg.len() < 300, "{msg}");
    }

    #[test]
    fn scope_prefixes() {
        assert_eq!(
            scope_prefix(P, Some("p1")).unwrap(),
            "/registry/configmaps/clusters/p1/"
        );
        assert_eq!(scope_prefix(P, None).unwrap(), "/registry/configmaps/root/");
        assert_eq!(
            scope_prefix("/registry/configmaps/", Some("p1")).unwrap(),
            "/registry/configmaps/clusters/p1/"
        );
        assert!(matches!(
            scope_prefix(P, Some("P1")),
            Err(KeyError::InvalidProject(_))
        ));
    }

    #[test]
    fn scoped_keys() {
        let k = |key: &str, project| scoped_key(key, P, project).unwrap().into_owned();
        assert_eq!(
            k("/registry/configmaps/ns/a", Some("p1")),
            "/registry/configmaps/clusters/p1/ns/a"
        );
        assert_eq!(
            k("/registry/configmaps/ns/a", None),
            "/registry/configmaps/root/ns/a"
        );
        assert_eq!(
            k("/registry/configmaps", Some("p1")),
            "/registry/configmaps/clusters/p1/"
        );
        assert_eq!(
            k("/registry/configmaps/", Some("p1")),
            "/registry/configmaps/clusters/p1/"
        );
        // Not on a segment boundary, or elsewhere entirely: unchanged and borrowed.
        for other in [
            "/registry/configmapsX/a",
            "/registry/secrets/a",
            "",
            "/registry",
        ] {
            let out = scoped_key(other, P, Some("p1")).unwrap();
            assert!(matches!(out, Cow::Borrowed(_)));
            assert_eq!(out, other);
        }
        // Trailing slash on the prefix is tolerated.
        assert_eq!(
            scoped_key(
                "/registry/configmaps/ns/a",
                "/registry/configmaps/",
                Some("p1")
            )
            .unwrap(),
            "/registry/configmaps/clusters/p1/ns/a"
        );
        // The project is validated even when the key would pass through.
        assert!(scoped_key("/elsewhere", P, Some("Bad")).is_err());
    }

    #[test]
    fn project_of_keys() {
        fn p(key: &str) -> Result<Option<&str>, KeyError> {
            project_of_key(key, P)
        }
        assert_eq!(p("/registry/configmaps/clusters/p1/ns/a"), Ok(Some("p1")));
        assert_eq!(p("/registry/configmaps/clusters/p1/"), Ok(Some("p1")));
        assert_eq!(p("/registry/configmaps/clusters/p1"), Ok(Some("p1")));
        assert_eq!(p("/registry/configmaps/root/ns/a"), Ok(None));
        assert_eq!(p("/registry/configmaps/root/"), Ok(None));
        assert_eq!(p("/registry/configmaps/root"), Ok(None));
        assert_eq!(
            project_of_key(
                "/registry/configmaps/clusters/p1/x",
                "/registry/configmaps/"
            ),
            Ok(Some("p1"))
        );
        for bad in [
            "/registry/configmaps/ns/a",
            "/registry/configmaps",
            "/registry/configmaps/",
            "/registry/configmapsX/root/a",
            "/registry/secrets/root/a",
            "/registry/configmaps/rootx/a",
            "/registry/configmaps/clustersx/p1/a",
        ] {
            assert!(
                matches!(p(bad), Err(KeyError::NotScoped { .. })),
                "{bad}: {:?}",
                p(bad)
            );
        }
        for bad in [
            "/registry/configmaps/clusters/",
            "/registry/configmaps/clusters",
            "/registry/configmaps/clusters//a",
            "/registry/configmaps/clusters/Bad/a",
        ] {
            assert!(
                matches!(p(bad), Err(KeyError::InvalidProject(_))),
                "{bad}: {:?}",
                p(bad)
            );
        }
    }

    #[test]
    fn scoped_key_and_project_of_key_are_inverse() {
        for project in [Some("p1"), Some("a-b-9"), None] {
            for key in [
                "/registry/configmaps/ns/a",
                "/registry/configmaps",
                "/registry/configmaps/x",
            ] {
                let scoped = scoped_key(key, P, project).unwrap();
                assert_eq!(project_of_key(&scoped, P), Ok(project), "{scoped}");
            }
        }
    }

    #[test]
    fn scope_reuse_buffer() {
        let scope = Scope::new(P, Some("p1")).unwrap();
        let mut buf = String::new();
        assert!(scope.rewrite_into("/registry/configmaps/a", &mut buf));
        assert_eq!(buf, "/registry/configmaps/clusters/p1/a");
        assert!(!scope.rewrite_into("/other", &mut buf));
        assert!(buf.is_empty());
        assert_eq!(scope.prefix(), P);
    }
}

/// Python bindings for the key functions.
pub mod py {
    use super::{KeyError, Scope};
    use pyo3::exceptions::{PyTypeError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

    pyo3::create_exception!(
        tenantstore._native,
        InvalidProjectError,
        PyValueError,
        "A project id that is not a DNS-1123 label (lowercase alphanumerics or '-', 1-63 \
         characters, starting and ending with an alphanumeric)."
    );

    /// Lets `?` raise the exception Python callers catch: a bad project id is an
    /// `InvalidProjectError`, a key that is not scoped a plain `ValueError`.
    impl From<KeyError> for PyErr {
        fn from(err: KeyError) -> PyErr {
            match err {
                KeyError::InvalidProject(_) => InvalidProjectError::new_err(err.to_string()),
                KeyError::NotScoped { .. } => PyValueError::new_err(err.to_string()),
            }
        }
    }

    /// Call `f` on every item of a list, tuple or other iterable of keys. A bare `str` or
    /// `bytes` is refused: iterating it would silently treat each character as a key.
    fn for_each_item<'py>(
        keys: &Bound<'py, PyAny>,
        mut f: impl FnMut(&Bound<'py, PyAny>) -> PyResult<()>,
    ) -> PyResult<()> {
        if let Ok(list) = keys.cast::<PyList>() {
            for item in list.iter() {
                f(&item)?;
            }
        } else if let Ok(tuple) = keys.cast::<PyTuple>() {
            for item in tuple.iter() {
                f(&item)?;
            }
        } else if keys.is_instance_of::<PyString>() || keys.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "keys must be a sequence of str, not a single str or bytes",
            ));
        } else {
            for item in keys.try_iter()? {
                f(&item?)?;
            }
        }
        Ok(())
    }

    fn size_hint(keys: &Bound<'_, PyAny>) -> usize {
        keys.len().unwrap_or(0)
    }

    /// Raise InvalidProjectError unless `project_id` is a DNS-1123 label.
    #[pyfunction]
    pub fn validate_project_id(project_id: &str) -> PyResult<()> {
        Ok(super::validate_project_id(project_id)?)
    }

    /// `<prefix>/clusters/<project>/`, or `<prefix>/root/` when project is None.
    #[pyfunction]
    #[pyo3(signature = (resource_prefix, project))]
    pub fn scope_prefix(resource_prefix: &str, project: Option<&str>) -> PyResult<String> {
        Ok(super::scope_prefix(resource_prefix, project)?)
    }

    /// Insert the scope segment after the resource prefix; keys outside it come back unchanged.
    #[pyfunction]
    #[pyo3(signature = (key, resource_prefix, project))]
    pub fn scoped_key<'py>(
        key: &Bound<'py, PyString>,
        resource_prefix: &str,
        project: Option<&str>,
    ) -> PyResult<Bound<'py, PyString>> {
        let scope = Scope::new(resource_prefix, project)?;
        let mut out = String::new();
        if scope.rewrite_into(key.to_str()?, &mut out) {
            Ok(PyString::new(key.py(), &out))
        } else {
            Ok(key.clone())
        }
    }

    /// The project of a scoped key, or None for a root key.
    #[pyfunction]
    pub fn project_of_key(key: &str, resource_prefix: &str) -> PyResult<Option<String>> {
        Ok(super::project_of_key(key, resource_prefix)?.map(str::to_owned))
    }

    /// Batch form of scoped_key: one validation, one reused buffer, one output list.
    #[pyfunction]
    #[pyo3(signature = (keys, resource_prefix, project))]
    pub fn scoped_keys<'py>(
        keys: &Bound<'py, PyAny>,
        resource_prefix: &str,
        project: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = keys.py();
        let scope = Scope::new(resource_prefix, project)?;
        let mut buf = String::new();
        let mut out: Vec<Bound<'py, PyAny>> = Vec::with_capacity(size_hint(keys));
        for_each_item(keys, |item| {
            let key = item.cast::<PyString>()?;
            if scope.rewrite_into(key.to_str()?, &mut buf) {
                out.push(PyString::new(py, &buf).into_any());
            } else {
                out.push(item.clone());
            }
            Ok(())
        })?;
        PyList::new(py, out)
    }

    /// Batch form of project_of_key. Runs of keys with the same project share one str object.
    #[pyfunction]
    pub fn projects_of_keys<'py>(
        keys: &Bound<'py, PyAny>,
        resource_prefix: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = keys.py();
        let none = py.None().into_bound(py);
        let mut last: Option<(String, Bound<'py, PyAny>)> = None;
        let mut out: Vec<Bound<'py, PyAny>> = Vec::with_capacity(size_hint(keys));
        for_each_item(keys, |item| {
            let key = item.cast::<PyString>()?;
            match super::project_of_key(key.to_str()?, resource_prefix)? {
                None => out.push(none.clone()),
                Some(project) => match &last {
                    Some((text, obj)) if text == project => out.push(obj.clone()),
                    _ => {
                        let obj = PyString::new(py, project).into_any();
                        out.push(obj.clone());
                        last = Some((project.to_owned(), obj));
                    }
                },
            }
            Ok(())
        })?;
        PyList::new(py, out)
    }
}
