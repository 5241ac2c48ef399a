//! The REST wire format of PROTOCOL.md §1: request bodies, URL and Basic-auth encoding, and
//! the decoding of answers (errors are any body with an `error` key, whatever the status).

use serde_json::{json, Value};

/// A decoded failure of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The API's own error: `{"error": message, "code": class}`.
    Api { code: String, message: String },
    /// Not an answer the protocol allows (empty, not JSON, wrong status).
    Garbled(String),
}

/// `{"parameters": [...]}`, arguments in documented order.
pub fn body(params: Vec<Value>) -> String {
    json!({ "parameters": params }).to_string()
}

/// Decodes an answer: an `error` key wins over any status; otherwise only 200 with JSON is an
/// answer.
pub fn decode(status: u16, bytes: &[u8]) -> Result<Value, WireError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(WireError::Garbled(format!(
            "HTTP {status} with an empty body"
        )));
    }
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(_) => {
            return Err(WireError::Garbled(format!(
                "HTTP {status} with a body that is not JSON"
            )))
        }
    };
    if let Some(obj) = value.as_object() {
        if let Some(err) = obj.get("error") {
            let message = err.as_str().unwrap_or("").trim().to_string();
            let code = obj
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            return Err(WireError::Api { code, message });
        }
    }
    if status != 200 {
        return Err(WireError::Garbled(format!(
            "HTTP {status} without an error body"
        )));
    }
    Ok(value)
}

/// A list answer: the API may send a one-element list as a bare object.
pub fn as_list(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) => Some(a),
        Value::Object(_) => Some(vec![v]),
        _ => None,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 with padding (for the Basic authorization header).
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A flag the API may send as a boolean, 0/1, or a string of either. `None` = wrong type.
pub fn flag(v: Option<&Value>) -> Option<bool> {
    match v {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) => n.as_i64().map(|i| i != 0),
        Some(Value::String(s)) => match s.trim() {
            "1" | "true" => Some(true),
            "0" | "false" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An integer id the API may send as a number or a numeric string.
pub fn int(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_win_over_status() {
        let e = decode(
            401,
            br#"{"error":"Access Denied. ","code":"SoftLayer_Exception_Public"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            WireError::Api {
                code: "SoftLayer_Exception_Public".into(),
                message: "Access Denied.".into()
            }
        );
        let e = decode(
            200,
            br#"{"error":"Internal Error","code":"SoftLayer_Exception_Public"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, WireError::Api { .. }));
        assert!(matches!(decode(200, b""), Err(WireError::Garbled(_))));
        assert!(matches!(decode(200, b"<html>"), Err(WireError::Garbled(_))));
        assert!(matches!(decode(500, b"[]"), Err(WireError::Garbled(_))));
        assert_eq!(decode(200, b"true").unwrap(), Value::Bool(true));
        assert_eq!(
            decode(200, br#""tok""#).unwrap(),
            Value::String("tok".into())
        );
    }

    #[test]
    fn bare_object_is_a_list() {
        assert_eq!(as_list(json!({"id": 1})).unwrap().len(), 1);
        assert_eq!(as_list(json!([])).unwrap().len(), 0);
        assert!(as_list(json!("x")).is_none());
    }

    #[test]
    fn encodings() {
        assert_eq!(base64(b"SL1:key"), "U0wxOmtleQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(url_encode(r#"{"a":"b c"}"#), "%7B%22a%22%3A%22b%20c%22%7D");
        assert_eq!(
            body(vec![json!("alice"), json!("pw"), Value::Null, Value::Null]),
            r#"{"parameters":["alice","pw",null,null]}"#
        );
    }

    #[test]
    fn tolerant_scalars() {
        assert_eq!(flag(Some(&json!(1))), Some(true));
        assert_eq!(flag(Some(&json!("0"))), Some(false));
        assert_eq!(flag(None), Some(false));
        assert_eq!(flag(Some(&json!({}))), None);
        assert_eq!(int(Some(&json!("122"))), Some(122));
        assert_eq!(int(Some(&json!(-1))), None);
    }
}
