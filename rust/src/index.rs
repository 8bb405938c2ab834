//! The ordered index behind a watch cache: string keys in byte order, each with a value.
//!
//! [`OrdIndex`] is generic over the value type so the tree logic is tested with plain Rust
//! values. It wraps a persistent B+ tree (`imbl::OrdMap`), so [`OrdIndex::snapshot`] is O(1): a
//! snapshot shares every node with the live index, and a later write copies only the path it
//! touches.
//!
//! The Python classes (`py` submodule) store `Arc<Entry>` values. Cloning a map (for a snapshot
//! or when a write copies a shared node) then only bumps Rust reference counts; Python reference
//! counts are touched only when an entry is created or finally dropped.

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
    use pyo3::prelude::*;
    use pyo3::types::{PyInt, PyList, PyString, PyTuple};
    use std::sync::{Arc, Mutex, MutexGuard};

    /// One stored value. `item` is the `(key, resource_version, object)` tuple that `range`
    /// returns, built once at `put`, so a range query allocates nothing per item but the list.
    pub struct Entry {
        rv: u64,
        item: Py<PyTuple>,
    }

    impl Entry {
        fn object<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
            // The tuple was built by `put` with exactly three items.
            self.item
                .bind(py)
                .get_item(2)
                .expect("index entry tuple has three items")
        }

        fn pair<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
            let item = self.item.bind(py);
            PyTuple::new(py, [item.get_item(1)?, item.get_item(2)?])
        }
    }

    type Map = OrdIndex<Arc<Entry>>;

    fn pair_or_none<'py>(
        py: Python<'py>,
        entry: Option<Arc<Entry>>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        entry.map(|e| e.pair(py)).transpose()
    }

    fn range_list<'py>(
        py: Python<'py>,
        map: &Map,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let it = map.range_iter(prefix, start_after);
        let items: Vec<Bound<'py, PyTuple>> = match limit {
            Some(n) => {
                let mut items = Vec::with_capacity(n.min(map.len()).min(4096));
                items.extend(it.take(n).map(|(_, e)| e.item.bind(py).clone()));
                items
            }
            None => it.map(|(_, e)| e.item.bind(py).clone()).collect(),
        };
        PyList::new(py, items)
    }

    fn keys_list<'py>(py: Python<'py>, map: &Map, prefix: &str) -> PyResult<Bound<'py, PyList>> {
        let items = map
            .range_iter(prefix, None)
            .map(|(_, e)| e.item.bind(py).get_item(0))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Ordered index of `key -> (resource_version, object)`; see the module docs.
    ///
    /// Thread safety: the map sits behind a mutex. While the mutex is held no Python code runs
    /// and no Python object is created or dropped (reads clone the map in O(1) and work on the
    /// clone; writes hand the replaced entry back to be dropped after unlocking), so a
    /// finalizer or GC pass can never run while the lock is held and block another thread.
    #[pyclass(frozen, module = "tenantstore._native")]
    pub struct Index {
        map: Mutex<Map>,
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
        #[new]
        fn new() -> Self {
            Index {
                map: Mutex::new(Map::new()),
            }
        }

        /// Insert or replace `key`; returns the previous (resource_version, object) or None.
        fn put<'py>(
            &self,
            key: Bound<'py, PyString>,
            resource_version: Bound<'py, PyInt>,
            obj: Bound<'py, PyAny>,
        ) -> PyResult<Option<Bound<'py, PyTuple>>> {
            let py = key.py();
            let rv: u64 = resource_version.extract()?;
            // Keep the caller's int object (no new allocation) unless it is an int subclass
            // such as bool, which would otherwise leak into range() results.
            let rv_obj = if resource_version.is_exact_instance_of::<PyInt>() {
                resource_version.into_any()
            } else {
                rv.into_pyobject(py)?.into_any()
            };
            let rust_key: Arc<str> = Arc::from(key.to_str()?);
            let item = PyTuple::new(py, [key.into_any(), rv_obj, obj])?.unbind();
            let entry = Arc::new(Entry { rv, item });
            let previous = self.lock().insert(rust_key, entry);
            pair_or_none(py, previous)
        }

        /// Remove `key`; returns the previous (resource_version, object) or None.
        fn delete<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyTuple>>> {
            let previous = self.lock().remove(key);
            pair_or_none(py, previous)
        }

        /// (resource_version, object) for `key`, or None.
        fn get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyTuple>>> {
            let entry = self.lock().get(key).cloned();
            pair_or_none(py, entry)
        }

        /// The resource version stored for `key`, or None.
        fn resource_version(&self, key: &str) -> Option<u64> {
            self.lock().get(key).map(|e| e.rv)
        }

        /// The object stored for `key`, or None.
        fn get_object<'py>(&self, py: Python<'py>, key: &str) -> Option<Bound<'py, PyAny>> {
            let entry = self.lock().get(key).cloned();
            entry.map(|e| e.object(py))
        }

        fn __len__(&self) -> usize {
            self.lock().len()
        }

        fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
            match key.cast::<PyString>() {
                Ok(key) => Ok(self.lock().contains(key.to_str()?)),
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
            range_list(py, &view, prefix, start_after, limit)
        }

        /// Number of keys starting with `prefix`, after `start_after` when given (the
        /// items left after a page, for `remainingItemCount`).
        #[pyo3(signature = (prefix = "", start_after = None))]
        fn count(&self, prefix: &str, start_after: Option<&str>) -> usize {
            self.view().count(prefix, start_after)
        }

        /// Keys starting with `prefix`, in order.
        #[pyo3(signature = (prefix = ""))]
        fn keys<'py>(&self, py: Python<'py>, prefix: &str) -> PyResult<Bound<'py, PyList>> {
            let view = self.view();
            keys_list(py, &view, prefix)
        }

        /// Remove every key.
        fn clear(&self) {
            let old = self.lock().take();
            drop(old); // after unlocking: may run Python finalizers
        }

        /// An immutable O(1) view that later writes do not change.
        fn snapshot(&self) -> IndexSnapshot {
            IndexSnapshot { map: self.view() }
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
    }

    #[pymethods]
    impl IndexSnapshot {
        /// (resource_version, object) for `key`, or None.
        fn get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyTuple>>> {
            pair_or_none(py, self.map.get(key).cloned())
        }

        /// The resource version stored for `key`, or None.
        fn resource_version(&self, key: &str) -> Option<u64> {
            self.map.get(key).map(|e| e.rv)
        }

        /// The object stored for `key`, or None.
        fn get_object<'py>(&self, py: Python<'py>, key: &str) -> Option<Bound<'py, PyAny>> {
            self.map.get(key).map(|e| e.object(py))
        }

        fn __len__(&self) -> usize {
            self.map.len()
        }

        fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
            match key.cast::<PyString>() {
                Ok(key) => Ok(self.map.contains(key.to_str()?)),
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
            range_list(py, &self.map, prefix, start_after, limit)
        }

        /// Number of keys starting with `prefix`, after `start_after` when given.
        #[pyo3(signature = (prefix = "", start_after = None))]
        fn count(&self, prefix: &str, start_after: Option<&str>) -> usize {
            self.map.count(prefix, start_after)
        }

        /// Keys starting with `prefix`, in order.
        #[pyo3(signature = (prefix = ""))]
        fn keys<'py>(&self, py: Python<'py>, prefix: &str) -> PyResult<Bound<'py, PyList>> {
            keys_list(py, &self.map, prefix)
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
