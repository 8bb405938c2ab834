//! The messages the codec knows: field numbers from Kubernetes' `generated.proto`
//! (`k8s.io/api/core/v1`, `k8s.io/apimachinery/pkg/apis/meta/v1`), JSON names and omission
//! rules from the Go types' `json` tags.
//!
//! Fields are listed in the Go structs' order, which is the order Go's `encoding/json` writes
//! them in; the wire order (ascending field numbers) is computed by the encoder.

/// What a field holds, on the wire and in JSON.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// `string`: UTF-8 on the wire (invalid UTF-8 is an error), a JSON string.
    Str,
    /// `bytes`: raw on the wire, a base64 (standard, padded) JSON string.
    Bytes,
    /// `bool`: a varint.
    Bool,
    /// `int32`: a varint (negative values sign-extended to 64 bits).
    Int32,
    /// `int64`: a varint.
    Int64,
    /// A nested message; JSON object.
    Msg(&'static Message),
    /// `metav1.Time`: a `{seconds, nanos}` message on the wire, RFC 3339 to the second in
    /// JSON, `null` for the zero time (an empty message).
    Time,
    /// `metav1.MicroTime`: as `Time`, with six fractional digits in JSON.
    MicroTime,
    /// `map<string, string>`: repeated `{1: key, 2: value}` entries; a JSON object.
    StrMap,
    /// `map<string, bytes>`: as `StrMap`, values base64 in JSON.
    BytesMap,
    /// `metav1.FieldsV1`: a message whose field 1 holds JSON text; that JSON value itself in JSON.
    RawJson,
}

/// When a field appears in the JSON made from a decoded message (Go's `encoding/json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// A value with `omitempty`: left out when absent or zero (`""`, `0`, `false`, empty map
    /// or list, the zero time).
    OmitEmpty,
    /// A pointer (`*bool`, `*int64`, `*Struct`) with `omitempty`: written whenever it was on
    /// the wire, zero or not; left out when absent.
    IfSet,
    /// A value without `omitempty`, or a struct (which `omitempty` does not omit): always
    /// written, as its zero value when absent (`""`, `0`, `{}`, `null` for a time, `[]`).
    Always,
}

#[derive(Debug)]
pub struct Field {
    pub num: u32,
    pub name: &'static str,
    pub ty: Ty,
    pub repeated: bool,
    pub emit: Emit,
}

#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    pub fn field(&self, num: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.num == num)
    }
}

const fn f(num: u32, name: &'static str, ty: Ty, emit: Emit) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: false,
        emit,
    }
}

const fn rep(num: u32, name: &'static str, ty: Ty, emit: Emit) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: true,
        emit,
    }
}

use Emit::{Always, IfSet, OmitEmpty};
use Ty::{Bool, BytesMap, Int32, Int64, MicroTime, Msg, RawJson, Str, StrMap, Time};

// -- meta/v1 ---------------------------------------------------------------------------------

pub static OWNER_REFERENCE: Message = Message {
    name: "OwnerReference",
    fields: &[
        f(5, "apiVersion", Str, Always),
        f(1, "kind", Str, Always),
        f(3, "name", Str, Always),
        f(4, "uid", Str, Always),
        f(6, "controller", Bool, IfSet),
        f(7, "blockOwnerDeletion", Bool, IfSet),
    ],
};

pub static MANAGED_FIELDS_ENTRY: Message = Message {
    name: "ManagedFieldsEntry",
    fields: &[
        f(1, "manager", Str, OmitEmpty),
        f(2, "operation", Str, OmitEmpty),
        f(3, "apiVersion", Str, OmitEmpty),
        f(4, "time", Time, IfSet),
        f(6, "fieldsType", Str, OmitEmpty),
        f(7, "fieldsV1", RawJson, IfSet),
        f(8, "subresource", Str, OmitEmpty),
    ],
};

pub static OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        f(1, "name", Str, OmitEmpty),
        f(2, "generateName", Str, OmitEmpty),
        f(3, "namespace", Str, OmitEmpty),
        f(4, "selfLink", Str, OmitEmpty),
        f(5, "uid", Str, OmitEmpty),
        f(6, "resourceVersion", Str, OmitEmpty),
        f(7, "generation", Int64, OmitEmpty),
        // `omitempty,omitzero` since Go 1.24's apimachinery: the zero time is left out.
        f(8, "creationTimestamp", Time, OmitEmpty),
        f(9, "deletionTimestamp", Time, IfSet),
        f(10, "deletionGracePeriodSeconds", Int64, IfSet),
        f(11, "labels", StrMap, OmitEmpty),
        f(12, "annotations", StrMap, OmitEmpty),
        rep(13, "ownerReferences", Msg(&OWNER_REFERENCE), OmitEmpty),
        rep(14, "finalizers", Str, OmitEmpty),
        rep(17, "managedFields", Msg(&MANAGED_FIELDS_ENTRY), OmitEmpty),
    ],
};

pub static LIST_META: Message = Message {
    name: "ListMeta",
    fields: &[
        f(1, "selfLink", Str, OmitEmpty),
        f(2, "resourceVersion", Str, OmitEmpty),
        f(3, "continue", Str, OmitEmpty),
        f(4, "remainingItemCount", Int64, IfSet),
    ],
};

pub static PRECONDITIONS: Message = Message {
    name: "Preconditions",
    fields: &[f(1, "uid", Str, IfSet), f(2, "resourceVersion", Str, IfSet)],
};

pub static DELETE_OPTIONS: Message = Message {
    name: "DeleteOptions",
    fields: &[
        f(1, "gracePeriodSeconds", Int64, IfSet),
        f(2, "preconditions", Msg(&PRECONDITIONS), IfSet),
        f(3, "orphanDependents", Bool, IfSet),
        f(4, "propagationPolicy", Str, IfSet),
        rep(5, "dryRun", Str, OmitEmpty),
        f(
            6,
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            Bool,
            IfSet,
        ),
    ],
};

pub static STATUS_CAUSE: Message = Message {
    name: "StatusCause",
    fields: &[
        f(1, "reason", Str, OmitEmpty),
        f(2, "message", Str, OmitEmpty),
        f(3, "field", Str, OmitEmpty),
    ],
};

pub static STATUS_DETAILS: Message = Message {
    name: "StatusDetails",
    fields: &[
        f(1, "name", Str, OmitEmpty),
        f(2, "group", Str, OmitEmpty),
        f(3, "kind", Str, OmitEmpty),
        f(6, "uid", Str, OmitEmpty),
        rep(4, "causes", Msg(&STATUS_CAUSE), OmitEmpty),
        f(5, "retryAfterSeconds", Int32, OmitEmpty),
    ],
};

pub static STATUS: Message = Message {
    name: "Status",
    fields: &[
        f(1, "metadata", Msg(&LIST_META), Always),
        f(2, "status", Str, OmitEmpty),
        f(3, "message", Str, OmitEmpty),
        f(4, "reason", Str, OmitEmpty),
        f(5, "details", Msg(&STATUS_DETAILS), IfSet),
        f(6, "code", Int32, OmitEmpty),
    ],
};

// -- core/v1 ---------------------------------------------------------------------------------

pub static OBJECT_REFERENCE: Message = Message {
    name: "ObjectReference",
    fields: &[
        f(1, "kind", Str, OmitEmpty),
        f(2, "namespace", Str, OmitEmpty),
        f(3, "name", Str, OmitEmpty),
        f(4, "uid", Str, OmitEmpty),
        f(5, "apiVersion", Str, OmitEmpty),
        f(6, "resourceVersion", Str, OmitEmpty),
        f(7, "fieldPath", Str, OmitEmpty),
    ],
};

pub static LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "LocalObjectReference",
    fields: &[f(1, "name", Str, OmitEmpty)],
};

pub static CONFIG_MAP: Message = Message {
    name: "ConfigMap",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META), Always),
        f(4, "immutable", Bool, IfSet),
        f(2, "data", StrMap, OmitEmpty),
        f(3, "binaryData", BytesMap, OmitEmpty),
    ],
};

pub static SECRET: Message = Message {
    name: "Secret",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META), Always),
        f(5, "immutable", Bool, IfSet),
        f(2, "data", BytesMap, OmitEmpty),
        f(4, "stringData", StrMap, OmitEmpty),
        f(3, "type", Str, OmitEmpty),
    ],
};

pub static SERVICE_ACCOUNT: Message = Message {
    name: "ServiceAccount",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META), Always),
        rep(2, "secrets", Msg(&OBJECT_REFERENCE), OmitEmpty),
        rep(
            3,
            "imagePullSecrets",
            Msg(&LOCAL_OBJECT_REFERENCE),
            OmitEmpty,
        ),
        f(4, "automountServiceAccountToken", Bool, IfSet),
    ],
};

pub static NAMESPACE_SPEC: Message = Message {
    name: "NamespaceSpec",
    fields: &[rep(1, "finalizers", Str, OmitEmpty)],
};

pub static NAMESPACE_CONDITION: Message = Message {
    name: "NamespaceCondition",
    fields: &[
        f(1, "type", Str, Always),
        f(2, "status", Str, Always),
        f(4, "lastTransitionTime", Time, Always),
        f(5, "reason", Str, OmitEmpty),
        f(6, "message", Str, OmitEmpty),
    ],
};

pub static NAMESPACE_STATUS: Message = Message {
    name: "NamespaceStatus",
    fields: &[
        f(1, "phase", Str, OmitEmpty),
        rep(2, "conditions", Msg(&NAMESPACE_CONDITION), OmitEmpty),
    ],
};

pub static NAMESPACE: Message = Message {
    name: "Namespace",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META), Always),
        f(2, "spec", Msg(&NAMESPACE_SPEC), Always),
        f(3, "status", Msg(&NAMESPACE_STATUS), Always),
    ],
};

pub static EVENT_SOURCE: Message = Message {
    name: "EventSource",
    fields: &[
        f(1, "component", Str, OmitEmpty),
        f(2, "host", Str, OmitEmpty),
    ],
};

pub static EVENT_SERIES: Message = Message {
    name: "EventSeries",
    fields: &[
        f(1, "count", Int32, OmitEmpty),
        f(2, "lastObservedTime", MicroTime, Always),
    ],
};

pub static EVENT: Message = Message {
    name: "Event",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META), Always),
        f(2, "involvedObject", Msg(&OBJECT_REFERENCE), Always),
        f(3, "reason", Str, OmitEmpty),
        f(4, "message", Str, OmitEmpty),
        f(5, "source", Msg(&EVENT_SOURCE), Always),
        f(6, "firstTimestamp", Time, Always),
        f(7, "lastTimestamp", Time, Always),
        f(8, "count", Int32, OmitEmpty),
        f(9, "type", Str, OmitEmpty),
        f(10, "eventTime", MicroTime, Always),
        f(11, "series", Msg(&EVENT_SERIES), IfSet),
        f(12, "action", Str, OmitEmpty),
        f(13, "related", Msg(&OBJECT_REFERENCE), IfSet),
        f(14, "reportingComponent", Str, Always),
        f(15, "reportingInstance", Str, Always),
    ],
};

macro_rules! list {
    ($static:ident, $name:literal, $item:ident) => {
        pub static $static: Message = Message {
            name: $name,
            fields: &[
                f(1, "metadata", Msg(&LIST_META), Always),
                rep(2, "items", Msg(&$item), Always),
            ],
        };
    };
}

list!(CONFIG_MAP_LIST, "ConfigMapList", CONFIG_MAP);
list!(SECRET_LIST, "SecretList", SECRET);
list!(SERVICE_ACCOUNT_LIST, "ServiceAccountList", SERVICE_ACCOUNT);
list!(NAMESPACE_LIST, "NamespaceList", NAMESPACE);
list!(EVENT_LIST, "EventList", EVENT);

/// The top-level kinds, by `(apiVersion, kind)`: what a `runtime.Unknown` envelope may name.
static KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "NamespaceList", &NAMESPACE_LIST),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "ConfigMapList", &CONFIG_MAP_LIST),
    ("v1", "Secret", &SECRET),
    ("v1", "SecretList", &SECRET_LIST),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
    ("v1", "ServiceAccountList", &SERVICE_ACCOUNT_LIST),
    ("v1", "Event", &EVENT),
    ("v1", "EventList", &EVENT_LIST),
    ("v1", "Status", &STATUS),
    // Registered in every group version and in `meta.k8s.io/v1`; clients send either.
    ("v1", "DeleteOptions", &DELETE_OPTIONS),
    ("meta.k8s.io/v1", "DeleteOptions", &DELETE_OPTIONS),
];

/// The message of a top-level kind, if the codec knows it.
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static Message> {
    KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, m)| *m)
}

/// Every `(apiVersion, kind)` the codec knows.
pub fn kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    KINDS.iter().map(|(v, k, _)| (*v, *k))
}
