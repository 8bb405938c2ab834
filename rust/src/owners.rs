//! The tenant map's table: which scope owns each cached object, by UID.
//!
//! One entry per cached object of every tenant, so its size is paid tens of thousands of times
//! over. As a Python dict an entry cost a dict slot plus the UID string, and those strings were
//! the last survivors of the decoded list pages they came from: each kept a mostly empty
//! allocator arena resident. Here an entry holds no Python object at all:
//!
//! * a UID in the canonical UUID form (36 characters, lowercase hex, hyphens where UUIDs have
//!   them; what the API server generates) is kept as its 16 bytes, and formats back to exactly
//!   the same string; any other UID is kept as its own string, in a second table;
//! * the owner is a small integer naming an interned scope string (one per scope, shared by all
//!   of its objects), so an entry in the UUID table is 20 bytes plus the hash table's slack.
//!
//! The rules (first claim wins, refusals leave the owner's entry alone) are the Python
//! `TenantMap`'s; this is only its storage.

use std::collections::HashMap;

/// An interned owner (an index into the binding's table of names), below [`MARK`].
pub type OwnerId = u32;

/// The bit a reconcile sets on the value of each UID it finds live ([`OwnerTable::mark`]), so
/// that finding the stale entries needs no set of every live UID ([`OwnerTable::sweep`]).
pub const MARK: u32 = 1 << 31;

/// `uid -> owner id`, compact for UUIDs.
#[derive(Debug, Default)]
pub struct OwnerTable {
    uuids: HashMap<[u8; 16], OwnerId>,
    others: HashMap<Box<str>, OwnerId>,
}

/// What a claim did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The UID had no owner; it now has this one.
    New,
    /// The UID already had this owner.
    Same,
    /// Another owner holds the UID; nothing changed.
    Refused,
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// The 16 bytes of a UUID in canonical lowercase form, or None for any other string (which
/// would not format back to itself).
pub fn parse_uuid(uid: &str) -> Option<[u8; 16]> {
    let b = uid.as_bytes();
    if b.len() != 36 || HYPHENS.iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < 36 {
        if HYPHENS.contains(&i) {
            i += 1;
            continue;
        }
        out[n] = (hex(b[i])? << 4) | hex(b[i + 1])?;
        n += 1;
        i += 2;
    }
    Some(out)
}

/// The canonical string of a UUID's bytes (the inverse of [`parse_uuid`]).
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (n, byte) in bytes.iter().enumerate() {
        if matches!(n, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(DIGITS[usize::from(byte >> 4)] as char);
        s.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    s
}

impl OwnerTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.uuids.len() + self.others.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, uid: &str) -> Option<OwnerId> {
        let value = match parse_uuid(uid) {
            Some(k) => self.uuids.get(&k),
            None => self.others.get(uid),
        };
        value.map(|v| v & !MARK)
    }

    /// Mark `uid` as live for the next [`sweep`](Self::sweep); false if it has no entry.
    pub fn mark(&mut self, uid: &str) -> bool {
        let value = match parse_uuid(uid) {
            Some(k) => self.uuids.get_mut(&k),
            None => self.others.get_mut(uid),
        };
        match value {
            Some(v) => {
                *v |= MARK;
                true
            }
            None => false,
        }
    }

    /// Give `uid` to `owner` unless another owner holds it (the first claim wins).
    pub fn claim(&mut self, uid: &str, owner: OwnerId) -> Claim {
        let slot = match parse_uuid(uid) {
            Some(k) => self.uuids.entry(k),
            None => {
                return match self.others.get(uid) {
                    None => {
                        self.others.insert(uid.into(), owner);
                        Claim::New
                    }
                    Some(&o) if o & !MARK == owner => Claim::Same,
                    Some(_) => Claim::Refused,
                }
            }
        };
        match slot {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(owner);
                Claim::New
            }
            std::collections::hash_map::Entry::Occupied(o) if *o.get() & !MARK == owner => {
                Claim::Same
            }
            std::collections::hash_map::Entry::Occupied(_) => Claim::Refused,
        }
    }

    /// Drop `uid`'s entry; true if there was one.
    pub fn forget(&mut self, uid: &str) -> bool {
        match parse_uuid(uid) {
            Some(k) => self.uuids.remove(&k).is_some(),
            None => self.others.remove(uid).is_some(),
        }
    }

    /// Every UID, as the strings they were recorded with.
    pub fn uids(&self) -> Vec<String> {
        let mut out: Vec<String> = self.uuids.keys().map(format_uuid).collect();
        out.extend(self.others.keys().map(|k| k.to_string()));
        out
    }

    /// Drop the entries neither marked since the last sweep nor accepted by `keep`, and
    /// clear every mark; returns how many were dropped. `keep` sees only unmarked UIDs.
    pub fn sweep<E>(&mut self, mut keep: impl FnMut(&str) -> Result<bool, E>) -> Result<usize, E> {
        let before = self.len();
        let mut stale_uuids = Vec::new();
        for (k, v) in self.uuids.iter_mut() {
            if *v & MARK != 0 {
                *v &= !MARK;
            } else if !keep(&format_uuid(k))? {
                stale_uuids.push(*k);
            }
        }
        let mut stale_others = Vec::new();
        for (k, v) in self.others.iter_mut() {
            if *v & MARK != 0 {
                *v &= !MARK;
            } else if !keep(k)? {
                stale_others.push(k.clone());
            }
        }
        for k in stale_uuids {
            self.uuids.remove(&k);
        }
        for k in stale_others {
            self.others.remove(&k);
        }
        if self.uuids.capacity() > 4 * self.uuids.len().max(1024) {
            self.uuids.shrink_to_fit();
        }
        Ok(before - self.len())
    }
}

pub mod py {
    //! `OwnerMap`: the table with its owners interned as Python strings.

    use super::{Claim, OwnerId, OwnerTable, MARK};
    use pyo3::exceptions::PyOverflowError;
    use pyo3::prelude::*;
    use pyo3::types::{PyAny, PyString};
    use std::collections::HashMap;
    use std::sync::{Mutex, MutexGuard};

    /// Owners are interned as Rust strings, not Python ones: a Python string kept here would
    /// be one recorded while a list page was decoded, and would keep the interpreter's arena
    /// of that page resident after the page is freed.
    #[derive(Default)]
    struct Inner {
        table: OwnerTable,
        names: Vec<Box<str>>,
        ids: HashMap<Box<str>, OwnerId>,
    }

    impl Inner {
        fn intern(&mut self, owner: &str) -> PyResult<OwnerId> {
            if let Some(&id) = self.ids.get(owner) {
                return Ok(id);
            }
            let id = OwnerId::try_from(self.names.len())
                .ok()
                .filter(|&id| id < MARK)
                .ok_or_else(|| PyOverflowError::new_err("too many owners"))?;
            self.names.push(owner.into());
            self.ids.insert(owner.into(), id);
            Ok(id)
        }
    }

    /// `uid -> owner` (a string), compact: see the module docs. No Python code runs while
    /// the lock is held but `str` hashing and comparison in `sweep`.
    #[pyclass(frozen, module = "tenantstore._native")]
    pub struct OwnerMap {
        inner: Mutex<Inner>,
    }

    impl OwnerMap {
        fn lock(&self) -> MutexGuard<'_, Inner> {
            self.inner.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    #[pymethods]
    impl OwnerMap {
        #[new]
        fn new() -> Self {
            OwnerMap {
                inner: Mutex::new(Inner::default()),
            }
        }

        /// Give `uid` to `owner` unless another owner holds it; true if `owner` now holds it.
        fn claim(&self, uid: &str, owner: &str) -> PyResult<bool> {
            let mut inner = self.lock();
            let id = inner.intern(owner)?;
            Ok(inner.table.claim(uid, id) != Claim::Refused)
        }

        /// The owner of `uid`, or None when it has none.
        fn owner<'py>(&self, py: Python<'py>, uid: &str) -> Option<Bound<'py, PyString>> {
            let inner = self.lock();
            let id = inner.table.get(uid)?;
            Some(PyString::new(py, &inner.names[id as usize]))
        }

        /// Drop `uid`'s entry; true if there was one.
        fn forget(&self, uid: &str) -> bool {
            self.lock().table.forget(uid)
        }

        /// Every UID that has an owner.
        fn uids(&self) -> Vec<String> {
            self.lock().table.uids()
        }

        /// Mark `uid` live for the next `sweep`; false if it has no entry.
        fn mark(&self, uid: &str) -> bool {
            self.lock().table.mark(uid)
        }

        /// Drop the entries not marked since the last sweep and not in `keep` (a container
        /// of strings); clears the marks. Returns how many were dropped.
        fn sweep(&self, keep: &Bound<'_, PyAny>) -> PyResult<usize> {
            self.lock().table.sweep(|uid| keep.contains(uid))
        }

        fn __len__(&self) -> usize {
            self.lock().table.len()
        }

        fn __contains__(&self, uid: &Bound<'_, PyAny>) -> PyResult<bool> {
            match uid.cast::<PyString>() {
                Ok(uid) => Ok(self.lock().table.get(uid.to_str()?).is_some()),
                Err(_) => Ok(false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    #[test]
    fn uuid_round_trips_and_only_canonical_form_parses() {
        let b = parse_uuid(U).unwrap();
        assert_eq!(format_uuid(&b), U);
        assert!(parse_uuid(&U.to_uppercase()).is_none());
        assert!(parse_uuid("0f8fad5bd9cb469fa16570867728950e").is_none());
        assert!(parse_uuid("0f8fad5b-d9cb-469f-a165-70867728950").is_none());
        assert!(parse_uuid("0f8fad5b-d9cb-469f-a165-70867728950g").is_none());
        assert!(parse_uuid("0f8fad5b-d9cb-469f-a165+70867728950e").is_none());
    }

    #[test]
    fn first_claim_wins_for_both_forms() {
        let mut t = OwnerTable::new();
        for uid in [U, "not-a-uuid", &U.to_uppercase()] {
            assert_eq!(t.claim(uid, 1), Claim::New);
            assert_eq!(t.claim(uid, 1), Claim::Same);
            assert_eq!(t.claim(uid, 2), Claim::Refused);
            assert_eq!(t.get(uid), Some(1));
        }
        assert_eq!(t.len(), 3);
        assert!(t.forget(U));
        assert!(!t.forget(U));
        assert_eq!(t.get(U), None);
        assert_eq!(t.claim(U, 2), Claim::New);
    }

    #[test]
    fn sweep_keeps_the_marked_and_the_accepted_and_clears_marks() {
        let mut t = OwnerTable::new();
        t.claim(U, 0);
        t.claim("x", 0);
        t.claim("y", 1);
        t.claim("z", 1);
        assert!(t.mark(U) && t.mark("y") && !t.mark("absent"));
        // A mark changes nothing of what a lookup or a claim sees.
        assert_eq!(t.get(U), Some(0));
        assert_eq!(t.claim(U, 0), Claim::Same);
        assert_eq!(t.claim(U, 1), Claim::Refused);
        let mut seen = Vec::new();
        let dropped = t
            .sweep(|u| {
                seen.push(u.to_string());
                Ok::<bool, ()>(u == "z")
            })
            .unwrap();
        assert_eq!(dropped, 1);
        seen.sort();
        assert_eq!(seen, vec!["x".to_string(), "z".to_string()]);
        let mut uids = t.uids();
        uids.sort();
        assert_eq!(uids, vec![U.to_string(), "y".to_string(), "z".to_string()]);
        // The marks are gone: an empty sweep drops everything.
        assert_eq!(t.sweep(|_| Ok::<bool, ()>(false)).unwrap(), 3);
        assert!(t.is_empty());
    }
}
