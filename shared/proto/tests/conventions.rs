//! The API's conventions (docs/api.md), checked on the compiled protos so a
//! new RPC or field cannot quietly break them: idempotency keys named one
//! way on every mutating call, a dry run on every participant change, every
//! list paged, no field a common language reserves, and explicit presence
//! for every flag whose default would change behaviour.

use prost::Message;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorSet, MethodDescriptorProto};
use std::collections::HashMap;

/// Keywords of the languages integrators use (Python, Go, Java, Kotlin, C#,
/// JavaScript/TypeScript, Rust, Swift, Ruby) that are plausible field names.
const KEYWORDS: &[&str] = &[
    "and",
    "as",
    "assert",
    "async",
    "await",
    "base",
    "begin",
    "break",
    "case",
    "catch",
    "chan",
    "checked",
    "class",
    "const",
    "continue",
    "def",
    "default",
    "defer",
    "del",
    "delete",
    "do",
    "elif",
    "else",
    "end",
    "enum",
    "event",
    "except",
    "extends",
    "false",
    "final",
    "finally",
    "fixed",
    "for",
    "from",
    "func",
    "function",
    "global",
    "go",
    "goto",
    "if",
    "impl",
    "import",
    "in",
    "interface",
    "is",
    "lambda",
    "let",
    "lock",
    "loop",
    "map",
    "match",
    "mod",
    "module",
    "move",
    "new",
    "next",
    "nil",
    "none",
    "nonlocal",
    "not",
    "null",
    "object",
    "operator",
    "optional",
    "or",
    "out",
    "package",
    "params",
    "pass",
    "private",
    "protected",
    "public",
    "raise",
    "range",
    "ref",
    "repeated",
    "require",
    "rescue",
    "return",
    "select",
    "self",
    "static",
    "string",
    "struct",
    "super",
    "switch",
    "then",
    "this",
    "throw",
    "to",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "undefined",
    "unless",
    "until_",
    "use",
    "var",
    "void",
    "when",
    "where",
    "while",
    "with",
    "yield",
];

/// Request flags whose unset value is the documented default behaviour
/// (docs/api.md, "Explicit presence"), not a silent change of money or
/// status; every other bool in a request must be `optional` and required.
const DEFAULT_SAFE_FLAGS: &[&str] = &["validate_only", "parked_only", "interim", "keep_mentor", "with_mentor"];

/// Lists by another name than `List...`.
const OTHER_LISTS: &[&str] = &["GetParticipantHistory", "GetSyncStatus", "GetStatement", "CheckConsistency"];

struct Api {
    messages: HashMap<String, DescriptorProto>,
    methods: Vec<(String, MethodDescriptorProto)>,
}

fn api() -> Api {
    let set = FileDescriptorSet::decode(steplab_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let mut messages = HashMap::new();
    let mut methods = Vec::new();
    for file in set.file.iter().filter(|f| f.package().starts_with("steplab.")) {
        for message in &file.message_type {
            messages.insert(format!(".{}.{}", file.package(), message.name()), message.clone());
        }
        for service in &file.service {
            for method in &service.method {
                methods.push((service.name().to_owned(), method.clone()));
            }
        }
    }
    Api { messages, methods }
}

impl Api {
    fn input(&self, method: &MethodDescriptorProto) -> &DescriptorProto {
        &self.messages[method.input_type()]
    }
    fn output(&self, method: &MethodDescriptorProto) -> &DescriptorProto {
        &self.messages[method.output_type()]
    }
}

fn has(message: &DescriptorProto, field: &str) -> bool {
    message.field.iter().any(|f| f.name() == field)
}

fn reads(method: &str) -> bool {
    ["Get", "List", "Watch", "Check", "Preview", "Reconcile"].iter().any(|p| method.starts_with(p))
}

/// A batch of commands (ApplyCommands) is keyed per command: each
/// `EncodedCommand` holds a request that carries its own idempotency_key,
/// so the batch itself takes none.
fn carries_keyed_commands(input: &DescriptorProto) -> bool {
    input.field.len() == 1 && input.field[0].type_name() == ".steplab.common.v1.EncodedCommand"
}

#[test]
fn no_field_is_named_after_a_keyword_of_a_common_language() {
    let api = api();
    let mut found: Vec<String> = Vec::new();
    for (name, message) in &api.messages {
        for field in &message.field {
            if KEYWORDS.contains(&field.name()) {
                found.push(format!("{name}.{}", field.name()));
            }
        }
        for nested in &message.nested_type {
            for field in &nested.field {
                if KEYWORDS.contains(&field.name()) {
                    found.push(format!("{name}.{}.{}", nested.name(), field.name()));
                }
            }
        }
    }
    found.sort();
    assert!(found.is_empty(), "fields named after a keyword: {found:?}");
}

#[test]
fn every_mutating_call_takes_an_idempotency_key_and_none_names_it_request_id() {
    let api = api();
    for (service, method) in &api.methods {
        let input = api.input(method);
        assert!(
            !has(input, "request_id"),
            "{service}.{} has a request_id field: name it idempotency_key",
            method.name()
        );
        if !reads(method.name()) && !carries_keyed_commands(input) {
            assert!(
                has(input, "idempotency_key"),
                "{service}.{} changes state but takes no idempotency_key",
                method.name()
            );
        }
    }
}

#[test]
fn every_participant_change_has_a_dry_run_and_answers_its_effects() {
    let api = api();
    let changes: Vec<_> =
        api.methods.iter().filter(|(service, m)| service == "ParticipantService" && !reads(m.name())).collect();
    assert!(changes.len() >= 19, "{} participant changes", changes.len());
    for (_, method) in changes {
        assert!(has(api.input(method), "validate_only"), "{} has no validate_only", method.name());
        if method.name() != "RetryParkedCommands" {
            assert!(has(api.output(method), "effects"), "{} answers no effects", method.name());
        }
    }
}

#[test]
fn every_list_is_paged_the_same_way() {
    let api = api();
    let mut lists = 0;
    for (service, method) in &api.methods {
        let name = method.name();
        if !(name.starts_with("List") || OTHER_LISTS.contains(&name)) {
            continue;
        }
        lists += 1;
        let input = api.input(method);
        for field in ["page_size", "page_token"] {
            assert!(has(input, field), "{service}.{name} has no {field}");
        }
        assert!(has(api.output(method), "next_page_token"), "{service}.{name} answers no next_page_token");
    }
    assert!(lists >= 14, "{lists} lists");
}

#[test]
fn a_flag_whose_default_would_change_behaviour_has_explicit_presence() {
    let api = api();
    for (service, method) in &api.methods {
        for field in &api.input(method).field {
            let implicit_bool = field.r#type() == Type::Bool && !field.proto3_optional();
            assert!(
                !implicit_bool || DEFAULT_SAFE_FLAGS.contains(&field.name()),
                "{service}.{}.{} is a bool without presence: make it optional (and refuse it unset) or document \
                 its default in docs/api.md and DEFAULT_SAFE_FLAGS",
                method.name(),
                field.name()
            );
        }
    }
}
