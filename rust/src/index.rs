//! The ordered index behind a watch cache: string keys in byte order, each with a value.
//!
//! [`OrdIndex`] is generic over the value type so the tree logic is tested with plain Rust
//! values. It wraps a persistent B+ tree (`imbl::OrdMap`), so [`OrdIndex::snapshot`] is O(1): a
//! snapshot shares every node with the live index, and a later write copies only the path it
//! touches.
//!
//! The Python classes (`py` submodule) store `Arc<Entry>` values: each object's encoded JSON and
//! projection (`objects.rs`), no Python object. Cloning a map (for a snapshot or when a write
//! copies a shared node) only bumps Rust reference counts, and LIST pages are assembled from the
//! bytes without creating a Python object per item.

use imbl::OrdMap;
use std::ops::Bound;
use std::sync::Arc;

/// A persistent ordered map from string keys to `V`, with prefix range queries.
#[derive(Debug, Clone)]
pub struct OrdIndex<V: Clone> {
    map: OrdMap<Arc<str>, V>,
}

impl<V: Clone> Default for OrdIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// The lower bound for a prefix scan that starts strictly after `start_after` (if given).
#[inline]
fn lower_bound<'a>(prefix: &'a str, start_after: Option<&'a str>) -> Bound<&'a str> {
    match start_after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}

impl<V: Clone> OrdIndex<V> {
    /// An empty index.
    pub fn new() -> Self {
        OrdIndex { map: OrdMap::new() }
    }

    /// Number of keys.
    #[inline]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are no keys.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Insert or replace; returns the previous value.
    #[inline]
    pub fn insert(&mut self, key: Arc<str>, value: V) -> Option<V> {
        self.map.insert(key, value)
    }

    /// Remove; returns the previous value.
    #[inline]
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.map.remove(key)
    }

    /// The value for `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    /// True when `key` is present.
    #[inline]
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Remove everything, returning the old contents (so the caller decides where they drop).
    #[inline]
    pub fn take(&mut self) -> OrdIndex<V> {
        std::mem::take(self)
    }

    /// An O(1) immutable copy that later writes to `self` do not change.
    #[inline]
    pub fn snapshot(&self) -> OrdIndex<V> {
        self.clone()
    }

    /// Entries whose key starts with `prefix`, strictly after `start_after` when given, in key
    /// order. O(log n) to find the start, then O(1) per item; stops at the first key past the
    /// prefix.
    #[inline]
    pub fn range_iter<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Arc<str>, &'a V)> + 'a {
        let bounds: (Bound<&str>, Bound<&str>) =
            (lower_bound(prefix, start_after), Bound::Unbounded);
        self.map
            .range::<_, str>(bounds)
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Every entry from `lower` on, in key order.
    #[inline]
    pub fn iter_from<'a>(
        &'a self,
        lower: Bound<&str>,
    ) -> impl Iterator<Item = (&'a Arc<str>, &'a V)> {
        self.map.range::<_, str>((lower, Bound::Unbounded))
    }

    /// Like [`range_iter`](Self::range_iter), collected, with an optional item limit.
    pub fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Vec<(Arc<str>, V)> {
        let it = self.range_iter(prefix, start_after);
        let it: Box<dyn Iterator<Item = _>> = match limit {
            Some(n) => Box::new(it.take(n)),
            None => Box::new(it),
        };
        it.map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Number of keys starting with `prefix` (and after `start_after`, when given).
    /// O(log n + k), no allocation.
    #[inline]
    pub fn count(&self, prefix: &str, start_after: Option<&str>) -> usize {
        if prefix.is_empty() && start_after.is_none() {
            return self.map.len();
        }
        self.range_iter(prefix, start_after).count()
    }
}

/// Python classes `Index` and `IndexSnapshot`.
pub mod py {
    use super::OrdIndex;
    use crate::objects::py::{typed, CachedObject, Selector};
    use crate::objects::Entry;
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
    use std::borrow::Cow;
    use std::ops::Bound as B;
    use std::sync::{Arc, Mutex, MutexGuard};

    type Map = OrdIndex<Entry>;

    fn wrap(entry: Entry) -> CachedObject {
        CachedObject { entry }
    }

    /// How keys are held: a key that starts with the index's prefix without it (behind the
    /// tag `\x01`), any other key whole, behind `\x00` if it sorts before the prefix's keys
    /// and `\x02` after them. The keys under a prefix are one contiguous run of the order, so
    /// the tags keep the order of the whole keys, and every cached key of a resource saves the
    /// resource prefix it would repeat (a quarter of a typical key). No prefix: keys as given.
    #[derive(Clone)]
    struct KeyForm {
        prefix: Arc<str>,
    }

    impl KeyForm {
        fn store<'k>(&self, key: &'k str) -> Cow<'k, str> {
            let p = &*self.prefix;
            if p.is_empty() {
                return Cow::Borrowed(key);
            }
            let (tag, rest) = match key.strip_prefix(p) {
                Some(rest) => ('\u{1}', rest),
                None if key < p => ('\u{0}', key),
                None => ('\u{2}', key),
            };
            let mut out = String::with_capacity(rest.len() + 1);
            out.push(tag);
            out.push_str(rest);
            Cow::Owned(out)
        }

        fn load<'k>(&self, stored: &'k str) -> Cow<'k, str> {
            let p = &*self.prefix;
            if p.is_empty() {
                return Cow::Borrowed(stored);
            }
            match stored.strip_prefix('\u{1}') {
                Some(rest) => Cow::Owned(format!("{p}{rest}")),
                None => Cow::Borrowed(&stored[1..]),
            }
        }

        /// Does the whole key held as `stored` start with `q`? (No allocation.)
        fn starts_with(&self, stored: &str, q: &str) -> bool {
            let p = &*self.prefix;
            if p.is_empty() {
                return stored.starts_with(q);
            }
            match stored.strip_prefix('\u{1}') {
                Some(rest) => {
                    if q.len() <= p.len() {
                        p.starts_with(q)
                    } else {
                        q.starts_with(p) && rest.starts_with(&q[p.len()..])
                    }
                }
                None => stored[1..].starts_with(q),
            }
        }

        /// Calls `visit` with the entries whose key starts with `q`, in key order, from `start`
        /// (exclusive unless `inclusive`; a start before `q` starts at `q`), until it returns
        /// false.
        fn scan<'m>(
            &self,
            map: &'m Map,
            q: &str,
            start: Option<&str>,
            inclusive: bool,
            mut visit: impl FnMut(&'m str, &'m Entry) -> bool,
        ) {
            let (lower, inclusive) = match start {
                Some(s) if s >= q => (s, inclusive),
                _ => (q, true),
            };
            let lower = self.store(lower);
            let bound = if inclusive {
                B::Included(&*lower)
            } else {
                B::Excluded(&*lower)
            };
            for (k, e) in map.iter_from(bound) {
                if !self.starts_with(k, q) || !visit(k, e) {
                    break;
                }
            }
        }

        fn count(&self, map: &Map, prefix: &str, start_after: Option<&str>) -> usize {
            if prefix.is_empty() && start_after.is_none() {
                return map.len();
            }
            let mut n = 0;
            self.scan(map, prefix, start_after, false, |_, _| {
                n += 1;
                true
            });
            n
        }

        fn range_list<'py>(
            &self,
            py: Python<'py>,
            map: &Map,
            prefix: &str,
            start_after: Option<&str>,
            limit: Option<usize>,
        ) -> PyResult<Bound<'py, PyList>> {
            let mut found: Vec<(&str, &Entry)> = Vec::new();
            if limit != Some(0) {
                self.scan(map, prefix, start_after, false, |k, e| {
                    found.push((k, e));
                    limit.is_none_or(|n| found.len() < n)
                });
            }
            let items = found
                .into_iter()
                .map(|(k, e)| {
                    let obj = Bound::new(py, wrap(e.clone()))?;
                    PyTuple::new(
                        py,
                        [
                            PyString::new(py, &self.load(k)).into_any(),
                            e.rv().into_pyobject(py)?.into_any(),
                            obj.into_any(),
                        ],
                    )
                })
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)
        }

        fn keys_list<'py>(
            &self,
            py: Python<'py>,
            map: &Map,
            prefix: &str,
        ) -> PyResult<Bound<'py, PyList>> {
            let mut keys: Vec<Cow<'_, str>> = Vec::new();
            self.scan(map, prefix, None, false, |k, _| {
                keys.push(self.load(k));
                true
            });
            PyList::new(py, keys.iter().map(|k| &**k))
        }

        /// The entries a page of a LIST takes: from `start` (after it, or from it when
        /// `inclusive`), those `selector` matches, at most `limit`. Returns them, the key of
        /// the last one, and whether any key in the prefix follows it (matching or not: a
        /// continue token only promises that the list may go on).
        fn select_entries(
            &self,
            map: &Map,
            prefix: &str,
            start: Option<&str>,
            inclusive: bool,
            limit: Option<usize>,
            selector: Option<&Selector>,
        ) -> (Vec<Entry>, Option<String>, bool) {
            let limit = limit.filter(|n| *n > 0);
            let selector = selector.map(|s| &s.inner).filter(|s| !s.is_empty());
            let mut out = Vec::new();
            let mut last: Option<&str> = None;
            let mut more = false;
            self.scan(map, prefix, start, inclusive, |k, e| {
                if limit.is_some_and(|n| out.len() >= n) {
                    more = true;
                    return false;
                }
                if selector.is_none_or(|s| s.matches(e)) {
                    out.push(e.clone());
                    last = Some(k);
                }
                true
            });
            (out, last.map(|k| self.load(k).into_owned()), more)
        }

        #[allow(clippy::too_many_arguments)]
        fn select_encoded<'py>(
            &self,
            py: Python<'py>,
            map: &Map,
            prefix: &str,
            start: Option<&str>,
            inclusive: bool,
            limit: Option<usize>,
            selector: Option<&Selector>,
            kind: Option<&str>,
            api_version: Option<&str>,
        ) -> PyResult<(Bound<'py, PyBytes>, usize, Option<String>, bool)> {
            let typed = typed(kind, api_version)?;
            let (entries, last, more) =
                self.select_entries(map, prefix, start, inclusive, limit, selector);
            let size: usize = entries.iter().map(|e| e.json().len() + 64).sum();
            let mut out = Vec::with_capacity(size);
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                e.render_into(&mut out, e.rv(), typed);
            }
            Ok((PyBytes::new(py, &out), entries.len(), last, more))
        }
    }

    /// Ordered index of `key -> CachedObject`; see the module docs.
    ///
    /// Thread safety: the map sits behind a mutex; no Python code runs while it is held
    /// (entries are plain Rust values), and reads clone the map in O(1) and work on the clone.
    #[pyclass(frozen, module = "tenantstore._native")]
    pub struct Index {
        map: Mutex<Map>,
        keys: KeyForm,
    }

    impl Index {
        fn lock(&self) -> MutexGuard<'_, Map> {
            // No code path panics while holding the lock, but never turn poisoning into a
            // second panic.
            self.map.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// O(1) copy of the current map for read-only work outside the lock.
        fn view(&self) -> Map {
            self.lock().snapshot()
        }
    }

    #[pymethods]
    impl Index {
        /// `prefix`: the prefix most keys share (a cacher's resource prefix), held once
        /// rather than in every key; any key may still be stored.
        #[new]
        #[pyo3(signature = (prefix = ""))]
        fn new(prefix: &str) -> Self {
            Index {
                map: Mutex::new(Map::new()),
                keys: KeyForm {
                    prefix: Arc::from(prefix),
                },
            }
        }

        /// Insert or replace `key`; returns the previous object or None.
        fn put(&self, key: &str, obj: &CachedObject) -> Option<CachedObject> {
            let stored: Arc<str> = Arc::from(&*self.keys.store(key));
            let previous = self.lock().insert(stored, obj.entry.clone());
            previous.map(wrap)
        }

        /// Remove `key`; returns the previous object or None.
        fn delete(&self, key: &str) -> Option<CachedObject> {
            let stored = self.keys.store(key);
            let previous = self.lock().remove(&stored);
            previous.map(wrap)
        }

        /// The object at `key`, or None.
        fn get(&self, key: &str) -> Option<CachedObject> {
            let stored = self.keys.store(key);
            self.lock().get(&stored).cloned().map(wrap)
        }

        /// The resource version stored for `key`, or None.
        fn resource_version(&self, key: &str) -> Option<u64> {
            let stored = self.keys.store(key);
            self.lock().get(&stored).map(|e| e.rv())
        }

        fn __len__(&self) -> usize {
            self.lock().len()
        }

        fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
            match key.cast::<PyString>() {
                Ok(key) => {
                    let stored = self.keys.store(key.to_str()?).into_owned();
                    Ok(self.lock().contains(&stored))
                }
                Err(_) => Ok(false),
            }
        }

        /// [(key, resource_version, object)] for keys starting with `prefix`, strictly after
        /// `start_after` when given, at most `limit` items, in key order.
        #[pyo3(signature = (prefix = "", start_after = None, limit = None))]
        fn range<'py>(
            &self,
            py: Python<'py>,
            prefix: &str,
            start_after: Option<&str>,
            limit: Option<usize>,
        ) -> PyResult<Bound<'py, PyList>> {
            let view = self.view();
            self.keys.range_list(py, &view, prefix, start_after, limit)
        }

        /// A LIST page: `(objects, last key, more)`; see `select_encoded`.
        #[pyo3(signature = (prefix, start = None, inclusive = false, limit = None, selector = None))]
        fn select(
            &self,
            prefix: &str,
            start: Option<&str>,
            inclusive: bool,
            limit: Option<usize>,
            selector: Option<&Selector>,
        ) -> (Vec<CachedObject>, Option<String>, bool) {
            let view = self.view();
            let (entries, last, more) = self
                .keys
                .select_entries(&view, prefix, start, inclusive, limit, selector);
            (entries.into_iter().map(wrap).collect(), last, more)
        }

        /// A LIST page as the JSON of its items joined by commas: `(bytes, count, last key,
        /// more)`. From `start` (exclusive unless `inclusive`), the objects `selector`
        /// matches, at most `limit` (None or 0: all); `more` says a key follows the last.
        #[allow(clippy::too_many_arguments)]
        #[pyo3(signature = (prefix, start = None, inclusive = false, limit = None, selector = None, kind = None, api_version = None))]
        fn select_encoded<'py>(
            &self,
            py: Python<'py>,
            prefix: &str,
            start: Option<&str>,
            inclusive: bool,
            limit: Option<usize>,
            selector: Option<&Selector>,
            kind: Option<&str>,
            api_version: Option<&str>,
        ) -> PyResult<(Bound<'py, PyBytes>, usize, Option<String>, bool)> {
            let view = self.view();
            self.keys.select_encoded(
                py,
                &view,
                prefix,
                start,
                inclusive,
                limit,
                selector,
                kind,
                api_version,
            )
        }

        /// Number of keys starting with `prefix`, after `start_after` when given (the
        /// items left after a page, for `remainingItemCount`).
        #[pyo3(signature = (prefix = "", start_after = None))]
        fn count(&self, prefix: &str, start_after: Option<&str>) -> usize {
            self.keys.count(&self.view(), prefix, start_after)
        }

        /// Keys starting with `prefix`, in order.
        #[pyo3(signature = (prefix = ""))]
        fn keys<'py>(&self, py: Python<'py>, prefix: &str) -> PyResult<Bound<'py, PyList>> {
            let view = self.view();
            self.keys.keys_list(py, &view, prefix)
        }

        /// Remove every key.
        fn clear(&self) {
            let old = self.lock().take();
            drop(old);
        }

        /// An immutable O(1) view that later writes do not change.
        fn snapshot(&self) -> IndexSnapshot {
            IndexSnapshot {
                map: self.view(),
                keys: self.keys.clone(),
            }
        }

        fn __repr__(&self) -> String {
            format!(
                "<tenantstore._native.Index with {} keys>",
                self.lock().len()
            )
        }
    }

    /// A frozen point-in-time view of an [`Index`].
    #[pyclass(frozen, module = "tenantstore._native")]
    pub struct IndexSnapshot {
        map: Map,
        keys: KeyForm,
    }

    #[pymethods]
    impl IndexSnapshot {
        /// The object at `key`, or None.
        fn get(&self, key: &str) -> Option<CachedObject> {
            self.map.get(&self.keys.store(key)).cloned().map(wrap)
        }

        /// The resource version stored for `key`, or None.
        fn resource_version(&self, key: &str) -> Option<u64> {
            self.map.get(&self.keys.store(key)).map(|e| e.rv())
        }

        fn __len__(&self) -> usize {
            self.map.len()
        }

        fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
            match key.cast::<PyString>() {
                Ok(key) => Ok(self.map.contains(&self.keys.store(key.to_str()?))),
                Err(_) => Ok(false),
            }
        }

        /// Same as [`Index::range`].
        #[pyo3(signature = (prefix = "", start_after = None, limit = None))]
        fn range<'py>(
            &self,
            py: Python<'py>,
            prefix: &str,
            start_after: Option<&str>,
            limit: Option<usize>,
        ) -> PyResult<Bound<'py, PyList>> {
            self.keys
                .range_list(py, &self.map, prefix, start_after, limit)
        }

        /// Same as [`Index::select`].
        #[pyo3(signature = (prefix, start = None, inclusive = false, limit = None, selector = None))]
        fn select(
            &self,
            prefix: &str,
            start: Option<&str>,
            inclusive: bool,
            limit: Option<usize>,
            selector: Option<&Selector>,
        ) -> (Vec<CachedObject>, Option<String>, bool) {
            let (entries, last, more) = self
                .keys
                .select_entries(&self.map, prefix, start, inclusive, limit, selector);
            (entries.into_iter().map(wrap).collect(), last, more)
        }

        /// Same as [`Index::select_encoded`].
        #[allow(clippy::too_many_arguments)]
        #[pyo3(signature = (prefix, start = None, inclusive = false, limit = None, selector = None, kind = None, api_version = None))]
        fn select_encoded<'py>(
            &self,
            py: Python<'py>,
            prefix: &str,
            start: Option<&str>,
            inclusive: bool,
            limit: Option<usize>,
            selector: Option<&Selector>,
            kind: Option<&str>,
            api_version: Option<&str>,
        ) -> PyResult<(Bound<'py, PyBytes>, usize, Option<String>, bool)> {
            self.keys.select_encoded(
                py,
                &self.map,
                prefix,
                start,
                inclusive,
                limit,
                selector,
                kind,
                api_version,
            )
        }

        /// Number of keys starting with `prefix`, after `start_after` when given.
        #[pyo3(signature = (prefix = "", start_after = None))]
        fn count(&self, prefix: &str, start_after: Option<&str>) -> usize {
            self.keys.count(&self.map, prefix, start_after)
        }

        /// Keys starting with `prefix`, in order.
        #[pyo3(signature = (prefix = ""))]
        fn keys<'py>(&self, py: Python<'py>, prefix: &str) -> PyResult<Bound<'py, PyList>> {
            self.keys.keys_list(py, &self.map, prefix)
        }

        fn __repr__(&self) -> String {
            format!(
                "<tenantstore._native.IndexSnapshot with {} keys>",
                self.map.len()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn k(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn keys_of(v: &[(Arc<str>, u64)]) -> Vec<&str> {
        v.iter().map(|(k, _)| &**k).collect()
    }

    fn sample() -> OrdIndex<u64> {
        let mut idx = OrdIndex::new();
        for (i, key) in ["/a/1", "/a/2", "/a/3", "/ab/1", "/b/1", "/a", "/a/"]
            .iter()
            .enumerate()
        {
            assert_eq!(idx.insert(k(key), i as u64), None);
        }
        idx
    }

    #[test]
    fn basic_ops() {
        let mut idx = sample();
        assert_eq!(idx.len(), 7);
        assert!(!idx.is_empty());
        assert_eq!(idx.get("/a/2"), Some(&1));
        assert_eq!(idx.insert(k("/a/2"), 99), Some(1));
        assert_eq!(idx.get("/a/2"), Some(&99));
        assert_eq!(idx.len(), 7);
        assert!(idx.contains("/b/1"));
        assert_eq!(idx.remove("/b/1"), Some(4));
        assert_eq!(idx.remove("/b/1"), None);
        assert!(!idx.contains("/b/1"));
        assert_eq!(idx.get("/missing"), None);
        let old = idx.take();
        assert!(idx.is_empty());
        assert_eq!(old.len(), 6);
    }

    #[test]
    fn ranges() {
        let idx = sample();
        assert_eq!(
            keys_of(&idx.range("/a/", None, None)),
            ["/a/", "/a/1", "/a/2", "/a/3"]
        );
        assert_eq!(
            keys_of(&idx.range("/a", None, None)),
            ["/a", "/a/", "/a/1", "/a/2", "/a/3", "/ab/1"]
        );
        assert_eq!(
            keys_of(&idx.range("/a/", Some("/a/1"), None)),
            ["/a/2", "/a/3"]
        );
        assert_eq!(keys_of(&idx.range("/a/", Some("/a/1"), Some(1))), ["/a/2"]);
        assert_eq!(
            keys_of(&idx.range("/a/", None, Some(0))),
            Vec::<&str>::new()
        );
        // start_after before the prefix does not widen the range.
        assert_eq!(
            keys_of(&idx.range("/a/", Some("/"), Some(2))),
            ["/a/", "/a/1"]
        );
        // start_after past the prefix: nothing.
        assert!(idx.range("/a/", Some("/b"), None).is_empty());
        assert!(idx.range("/zzz", None, None).is_empty());
        assert_eq!(idx.range("", None, None).len(), 7);
        assert_eq!(idx.count("/a/", None), 4);
        assert_eq!(idx.count("/a", None), 6);
        assert_eq!(idx.count("", None), 7);
        assert_eq!(idx.count("/c", None), 0);
        assert_eq!(idx.count("/a/", Some("/a/")), 3);
        assert_eq!(idx.count("/a/", Some("/a/2")), 1);
    }

    #[test]
    fn unicode_and_byte_order() {
        let mut idx = OrdIndex::new();
        for key in ["/p/é", "/p/z", "/p/\u{10000}", "/p/A", "/p\u{7f}"] {
            idx.insert(k(key), 0u8);
        }
        let got: Vec<_> = idx
            .range_iter("/p/", None)
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(got, ["/p/A", "/p/z", "/p/é", "/p/\u{10000}"]);
    }

    #[test]
    fn snapshot_isolation() {
        let mut idx = sample();
        let snap = idx.snapshot();
        idx.insert(k("/a/4"), 100);
        idx.insert(k("/a/1"), 101);
        idx.remove("/a/2");
        let snap2 = idx.snapshot();
        idx.take();
        assert_eq!(snap.len(), 7);
        assert_eq!(snap.get("/a/1"), Some(&0));
        assert_eq!(snap.get("/a/2"), Some(&1));
        assert!(!snap.contains("/a/4"));
        assert_eq!(
            keys_of(&snap.range("/a/", None, None)),
            ["/a/", "/a/1", "/a/2", "/a/3"]
        );
        assert_eq!(snap2.len(), 7);
        assert_eq!(snap2.get("/a/1"), Some(&101));
        assert_eq!(
            keys_of(&snap2.range("/a/", None, None)),
            ["/a/", "/a/1", "/a/3", "/a/4"]
        );
        assert!(idx.is_empty());
    }

    /// Random operations against a BTreeMap model (deterministic xorshift, no extra crates).
    #[test]
    fn matches_btreemap_model() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut idx: OrdIndex<u64> = OrdIndex::new();
        let mut model: BTreeMap<String, u64> = BTreeMap::new();
        let mut snaps: Vec<(OrdIndex<u64>, BTreeMap<String, u64>)> = Vec::new();
        let key_of = |n: u64| format!("/r/{}/{:03}", n % 7, (n / 7) % 150);
        for step in 0..20_000u64 {
            let r = next();
            match r % 10 {
                0..=4 => {
                    let key = key_of(next());
                    assert_eq!(idx.insert(k(&key), step), model.insert(key, step));
                }
                5..=6 => {
                    let key = key_of(next());
                    assert_eq!(idx.remove(&key), model.remove(&key));
                }
                7 => {
                    if snaps.len() < 20 {
                        snaps.push((idx.snapshot(), model.clone()));
                    }
                }
                _ => {
                    let prefix = format!("/r/{}/", next() % 8);
                    let after = if next() % 2 == 0 {
                        Some(key_of(next()))
                    } else {
                        None
                    };
                    let limit = if next() % 2 == 0 {
                        Some((next() % 40) as usize)
                    } else {
                        None
                    };
                    let expect: Vec<(String, u64)> = model
                        .iter()
                        .filter(|(key, _)| key.starts_with(&prefix))
                        .filter(|(key, _)| after.as_ref().is_none_or(|a| key.as_str() > a.as_str()))
                        .take(limit.unwrap_or(usize::MAX))
                        .map(|(key, v)| (key.clone(), *v))
                        .collect();
                    let got: Vec<(String, u64)> = idx
                        .range(&prefix, after.as_deref(), limit)
                        .into_iter()
                        .map(|(key, v)| (key.to_string(), v))
                        .collect();
                    assert_eq!(got, expect);
                    assert_eq!(
                        idx.count(&prefix, None),
                        model.keys().filter(|key| key.starts_with(&prefix)).count()
                    );
                }
            }
            assert_eq!(idx.len(), model.len());
        }
        for (snap, model) in &snaps {
            let got: Vec<(String, u64)> = snap
                .range("", None, None)
                .into_iter()
                .map(|(key, v)| (key.to_string(), v))
                .collect();
            let expect: Vec<(String, u64)> =
                model.iter().map(|(key, v)| (key.clone(), *v)).collect();
            assert_eq!(got, expect);
        }
    }
}
