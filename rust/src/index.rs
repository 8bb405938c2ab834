//! The ordered index behind a watch cache: string keys in byte order, each with a value.
//!
//! [`OrdIndex`] is generic over the value type (anything that holds its own key, [`Keyed`]) so
//! the tree logic is tested with plain Rust values. It wraps a persistent B+ tree
//! (`imbl::OrdSet`), so [`OrdIndex::snapshot`] is O(1): a snapshot shares every node with the
//! live index, and a later write copies only the path it touches.
//!
//! The Python classes (`py` submodule) store [`Entry`](crate::objects::Entry) values: each
//! object's key, encoded JSON and projection in one allocation (`objects.rs`), no Python
//! object. The key lives in the value so a tree slot is one pointer and an object one
//! allocation. Cloning a map (for a snapshot or when a write copies a shared node) only bumps
//! Rust reference counts, and LIST pages are assembled from the bytes without creating a
//! Python object per item.

use imbl::OrdSet;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

/// A value that carries the key it is indexed under.
pub trait Keyed {
    fn key(&self) -> &[u8];
}

impl<V> Keyed for (Arc<str>, V) {
    fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Keyed for crate::objects::Entry {
    fn key(&self) -> &[u8] {
        crate::objects::Entry::key(self)
    }
}

/// A value ordered (and looked up) by its key alone.
#[derive(Debug, Clone)]
struct ByKey<V>(V);

impl<V: Keyed> PartialEq for ByKey<V> {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}

impl<V: Keyed> Eq for ByKey<V> {}

impl<V: Keyed> PartialOrd for ByKey<V> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<V: Keyed> Ord for ByKey<V> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.key().cmp(other.0.key())
    }
}

impl<V: Keyed> Borrow<[u8]> for ByKey<V> {
    fn borrow(&self) -> &[u8] {
        self.0.key()
    }
}

/// A persistent ordered set of `V` by key, with prefix range queries.
#[derive(Debug, Clone)]
pub struct OrdIndex<V: Keyed + Clone> {
    set: OrdSet<ByKey<V>>,
}

impl<V: Keyed + Clone> Default for OrdIndex<V> {
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

impl<V: Keyed + Clone> OrdIndex<V> {
    /// An empty index.
    pub fn new() -> Self {
        OrdIndex { set: OrdSet::new() }
    }

    /// Number of keys.
    #[inline]
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when there are no keys.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Insert or replace the value under its key; returns the previous value.
    #[inline]
    pub fn insert(&mut self, value: V) -> Option<V> {
        self.set.insert(ByKey(value)).map(|v| v.0)
    }

    /// Insert or replace every value of `values`.
    ///
    /// When they come in strictly ascending key order (a cache's first list, page by page),
    /// every other one is inserted first, then the rest: the tree splits a full leaf in two
    /// halves, so keys inserted in order leave every leaf half empty, while the second pass
    /// puts each of the others into the half-full leaf its neighbours are in, which fills it
    /// without a split. Leaves end full, half the slots per object (one word each).
    pub fn insert_many(&mut self, values: Vec<V>) {
        let sorted = values.windows(2).all(|w| w[0].key() < w[1].key());
        if !sorted {
            for v in values {
                self.insert(v);
            }
            return;
        }
        let mut second = Vec::with_capacity(values.len() / 2);
        for (i, v) in values.into_iter().enumerate() {
            if i % 2 == 0 {
                self.insert(v);
            } else {
                second.push(v);
            }
        }
        for v in second {
            self.insert(v);
        }
    }

    /// Remove; returns the previous value.
    #[inline]
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.set.remove(key.as_bytes()).map(|v| v.0)
    }

    /// The value for `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&V> {
        self.set.get(key.as_bytes()).map(|v| &v.0)
    }

    /// True when `key` is present.
    #[inline]
    pub fn contains(&self, key: &str) -> bool {
        self.set.contains(key.as_bytes())
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

    /// Every value from `lower` (a key bound) on, in key order.
    #[inline]
    pub fn iter_from<'a>(&'a self, lower: Bound<&str>) -> impl Iterator<Item = &'a V> {
        let lower: Bound<&[u8]> = match lower {
            Bound::Included(k) => Bound::Included(k.as_bytes()),
            Bound::Excluded(k) => Bound::Excluded(k.as_bytes()),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.set
            .range::<_, [u8]>((lower, Bound::Unbounded))
            .map(|v| &v.0)
    }

    /// Values whose key starts with `prefix`, strictly after `start_after` when given, in key
    /// order. O(log n) to find the start, then O(1) per item; stops at the first key past the
    /// prefix.
    #[inline]
    pub fn range_iter<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
    ) -> impl Iterator<Item = &'a V> + 'a {
        self.iter_from(lower_bound(prefix, start_after))
            .take_while(move |v| v.key().starts_with(prefix.as_bytes()))
    }

    /// Like [`range_iter`](Self::range_iter), collected, with an optional item limit.
    pub fn range(&self, prefix: &str, start_after: Option<&str>, limit: Option<usize>) -> Vec<V> {
        self.range_iter(prefix, start_after)
            .take(limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// Number of keys starting with `prefix` (and after `start_after`, when given).
    /// O(log n + k), no allocation.
    #[inline]
    pub fn count(&self, prefix: &str, start_after: Option<&str>) -> usize {
        if prefix.is_empty() && start_after.is_none() {
            return self.set.len();
        }
        self.range_iter(prefix, start_after).count()
    }
}

/// Python classes `Index` and `IndexSnapshot`.
pub mod py {
    use super::OrdIndex;
    use crate::objects::py::{typed, CachedObject, Selector};
    use crate::objects::{Entry, Typed};
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

        /// The whole key of an entry (keys are stored from `&str`, so valid UTF-8).
        fn load(&self, stored: &[u8]) -> String {
            let stored = String::from_utf8_lossy(stored);
            let p = &*self.prefix;
            if p.is_empty() {
                return stored.into_owned();
            }
            match stored.strip_prefix('\u{1}') {
                Some(rest) => format!("{p}{rest}"),
                None => stored[1..].to_owned(),
            }
        }

        /// Does the whole key held as `stored` start with `q`? (No allocation.)
        fn starts_with(&self, stored: &[u8], q: &str) -> bool {
            let (p, q) = (self.prefix.as_bytes(), q.as_bytes());
            if p.is_empty() {
                return stored.starts_with(q);
            }
            match stored.split_first() {
                Some((1, rest)) => {
                    if q.len() <= p.len() {
                        p.starts_with(q)
                    } else {
                        q.starts_with(p) && rest.starts_with(&q[p.len()..])
                    }
                }
                Some((_, rest)) => rest.starts_with(q),
                None => q.is_empty(),
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
            mut visit: impl FnMut(&'m Entry) -> bool,
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
            for e in map.iter_from(bound) {
                if !self.starts_with(e.key(), q) || !visit(e) {
                    break;
                }
            }
        }

        fn count(&self, map: &Map, prefix: &str, start_after: Option<&str>) -> usize {
            if prefix.is_empty() && start_after.is_none() {
                return map.len();
            }
            let mut n = 0;
            self.scan(map, prefix, start_after, false, |_| {
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
            let mut found: Vec<&Entry> = Vec::new();
            if limit != Some(0) {
                self.scan(map, prefix, start_after, false, |e| {
                    found.push(e);
                    limit.is_none_or(|n| found.len() < n)
                });
            }
            let items = found
                .into_iter()
                .map(|e| {
                    let obj = Bound::new(py, wrap(e.clone()))?;
                    PyTuple::new(
                        py,
                        [
                            PyString::new(py, &self.load(e.key())).into_any(),
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
            let mut keys: Vec<String> = Vec::new();
            self.scan(map, prefix, None, false, |e| {
                keys.push(self.load(e.key()));
                true
            });
            PyList::new(py, keys)
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
            let mut last: Option<&[u8]> = None;
            let mut more = false;
            self.scan(map, prefix, start, inclusive, |e| {
                if limit.is_some_and(|n| out.len() >= n) {
                    more = true;
                    return false;
                }
                if selector.is_none_or(|s| s.matches(e)) {
                    out.push(e.clone());
                    last = Some(e.key());
                }
                true
            });
            (out, last.map(|k| self.load(k)), more)
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
            let typed = typed(kind, api_version)?.map(|(k, a)| Typed::new(k, a));
            let (entries, last, more) =
                self.select_entries(map, prefix, start, inclusive, limit, selector);
            let size: usize = entries.iter().map(|e| e.json().len() + 64).sum();
            let mut out = Vec::with_capacity(size);
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                e.render_into(&mut out, None, typed.as_ref());
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
        fn put(&self, key: &str, obj: &CachedObject) -> PyResult<Option<CachedObject>> {
            let entry = obj.entry.with_key(&self.keys.store(key))?;
            let previous = self.lock().insert(entry);
            Ok(previous.map(wrap))
        }

        /// Insert or replace every `(key, object)` of `items`, as many `put` calls would (without
        /// their results). Given in key order (as a first list arrives), the index ends up in
        /// fewer, fuller tree nodes than the same keys put one by one.
        fn put_many(&self, items: Vec<(String, PyRef<'_, CachedObject>)>) -> PyResult<()> {
            let entries = items
                .iter()
                .map(|(key, obj)| obj.entry.with_key(&self.keys.store(key)))
                .collect::<Result<Vec<_>, _>>()?;
            drop(items);
            self.lock().insert_many(entries);
            Ok(())
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

    /// The index over `(key, value)` pairs, with the map-like calls the tests read best.
    #[derive(Clone, Debug)]
    struct Pairs<V: Clone>(OrdIndex<(Arc<str>, V)>);

    impl<V: Clone> Pairs<V> {
        fn new() -> Self {
            Pairs(OrdIndex::new())
        }
        fn len(&self) -> usize {
            self.0.len()
        }
        fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
        fn contains(&self, key: &str) -> bool {
            self.0.contains(key)
        }
        fn count(&self, prefix: &str, start_after: Option<&str>) -> usize {
            self.0.count(prefix, start_after)
        }
        fn insert(&mut self, key: Arc<str>, value: V) -> Option<V> {
            self.0.insert((key, value)).map(|p| p.1)
        }
        fn remove(&mut self, key: &str) -> Option<V> {
            self.0.remove(key).map(|p| p.1)
        }
        fn get(&self, key: &str) -> Option<&V> {
            self.0.get(key).map(|p| &p.1)
        }
        fn take(&mut self) -> Self {
            Pairs(self.0.take())
        }
        fn snapshot(&self) -> Self {
            Pairs(self.0.snapshot())
        }
        fn range(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            limit: Option<usize>,
        ) -> Vec<(Arc<str>, V)> {
            self.0.range(prefix, start_after, limit)
        }
        fn range_iter<'a>(
            &'a self,
            prefix: &'a str,
            start_after: Option<&'a str>,
        ) -> impl Iterator<Item = (&'a Arc<str>, &'a V)> + 'a {
            self.0.range_iter(prefix, start_after).map(|p| (&p.0, &p.1))
        }
    }

    fn k(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn keys_of(v: &[(Arc<str>, u64)]) -> Vec<&str> {
        v.iter().map(|(k, _)| &**k).collect()
    }

    fn sample() -> Pairs<u64> {
        let mut idx = Pairs::new();
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
        let mut idx = Pairs::new();
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
    fn insert_many_is_many_inserts() {
        for n in [0usize, 1, 2, 15, 16, 17, 33, 500, 2049] {
            let keys: Vec<String> = (0..n).map(|i| format!("/p/{i:05}")).collect();
            let mut shuffled = keys.clone();
            shuffled.reverse();
            for (order, start) in [(&keys, vec!["/p/0000x"]), (&shuffled, vec![])] {
                let mut idx: Pairs<usize> = Pairs::new();
                let mut model: BTreeMap<String, usize> = BTreeMap::new();
                for key in start {
                    idx.insert(k(key), 0);
                    model.insert(key.to_string(), 0);
                }
                let snap = idx.snapshot();
                let values: Vec<_> = order
                    .iter()
                    .enumerate()
                    .map(|(i, key)| (k(key), i))
                    .collect();
                idx.0.insert_many(values);
                for (i, key) in order.iter().enumerate() {
                    model.insert(key.clone(), i);
                }
                let got: Vec<(String, usize)> = idx
                    .range("", None, None)
                    .into_iter()
                    .map(|(key, v)| (key.to_string(), v))
                    .collect();
                let expect: Vec<(String, usize)> = model.into_iter().collect();
                assert_eq!(got, expect);
                assert!(snap.len() <= 1);
            }
        }
        // Not strictly ascending (a repeated key): the later value wins, as with inserts.
        let mut idx: Pairs<u8> = Pairs::new();
        idx.0
            .insert_many(vec![(k("/a"), 1), (k("/b"), 2), (k("/b"), 3)]);
        assert_eq!((idx.len(), idx.get("/b")), (2, Some(&3)));
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
        let mut idx: Pairs<u64> = Pairs::new();
        let mut model: BTreeMap<String, u64> = BTreeMap::new();
        let mut snaps: Vec<(Pairs<u64>, BTreeMap<String, u64>)> = Vec::new();
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
