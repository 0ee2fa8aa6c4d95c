//! The Hub's error bodies: a FHIR OperationOutcome for event requests and get-current-context
//! (JSON, `application/fhir+json`); subscription requests are refused in plain text (req 39,
//! §5a-5). Here, not in a shell, so that every hub writes them alike: the Worker
//! (`edge-hub/src/respond.rs`) and the test kit's in-process hub (`testkit/`).

use serde_json::json;

/// The OperationOutcome `issue.code` for an HTTP status.
pub fn issue_code(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid",
        401 => "login",
        403 => "forbidden",
        404 => "not-found",
        405 | 415 => "not-supported",
        409 => "conflict",
        413 => "too-long",
        429 => "throttled",
        _ => "exception",
    }
}

/// `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":…,"diagnostics":…}]}`.
pub fn operation_outcome(status: u16, diagnostics: &str) -> String {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": issue_code(status), "diagnostics": diagnostics }]
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_carry_the_message_and_a_code() {
        let v: serde_json::Value = serde_json::from_str(&operation_outcome(409, "v \"1\" is stale")).unwrap();
        assert_eq!(v["issue"][0]["code"], "conflict");
        assert_eq!(v["issue"][0]["diagnostics"], "v \"1\" is stale");
        assert_eq!(issue_code(413), "too-long");
    }
}
