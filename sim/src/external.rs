//! The second-factor calls: the phone binding service (PROTOCOL 2.4) and
//! `SoftLayer_User_Customer/performExternalAuthentication` for TOTP and VeriSign codes (2.5).

use std::time::Instant;

use serde_json::{json, Value};

use crate::api::{
    bad_status, ok, parameters, ApiError, Call, Portal, Reply, Route, CODE_LOGIN_FAILED,
    CODE_PUBLIC, MSG_ACCESS_DENIED, MSG_LOGIN_FAILED,
};
use crate::fixture::{Binding, Phone, WrongCodeAnswer};
use crate::ipnet;
use crate::phone::{Check, RequestError};
use crate::util;

pub const SVC_PHONE: &str = "SoftLayer_User_Customer_External_Binding_Phone";
pub const PHONE_METHODS: &[&str] = &[
    "getBindingStatus",
    "getAuthenticationMode",
    "getPhoneData",
    "requestPhoneValidation",
    "checkPhoneValidationResult",
];

pub const CODE_EXCEPTION: &str = "SoftLayer_Exception";
pub const CODE_AWAITING: &str =
    "SoftLayer_Exception_User_Customer_External_Binding_AwaitingResponse";
pub const CODE_PHONE_FAILED: &str =
    "SoftLayer_Exception_User_Customer_External_Binding_PhoneValidationFailed";
pub const CODE_BAD_TOKEN: &str =
    "SoftLayer_Exception_User_Customer_External_Binding_InvalidAuthenticationToken";
pub const CODE_AUTH_FAILED: &str =
    "SoftLayer_Exception_User_Customer_External_Binding_AuthenticationFailed";
pub const CODE_SECOND_CODE: &str =
    "SoftLayer_Exception_User_Customer_External_Binding_Verisign_SecondSecurityCodeRequired";

pub const MSG_EXCEEDED: &str =
    "You have exceeded the maximum phone validation requests. Please try again later.";
pub const MSG_UNREACHABLE: &str = "Unable to reach the phone number.";
pub const MSG_AWAITING: &str = "Waiting on the external authentication response";
pub const MSG_PHONE_FAILED: &str = "Phone validation failed.";
pub const MSG_BAD_TOKEN: &str = "Failed to find an valid authentication request.";
pub const MSG_AUTH_FAILED: &str = "Authentication failed.";
/// Two blanks after the first period, as documented.
pub const MSG_SECOND_CODE: &str =
    "Your credential has become out of synchronization.  Please supply a second security code.";

fn err(code: &'static str, msg: &str) -> ApiError {
    ApiError::new(500, code, msg)
}

/// One getPhoneData entry.
pub fn phone_json(p: &Phone) -> Value {
    json!({
        "countryCode": p.country_code,
        "phone": p.phone,
        "extension": p.extension,
        "phoneType": p.phone_type,
    })
}

/// A number or a string of digits as a number.
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string, or a number written out.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The binding's phone a requestPhoneValidation parameter names: `countryCode` and `phone`
/// must be equal, `extension` too (absent or null = ""), and `phoneType`, when given, equal
/// ignoring case. Other keys (`complexType`, `id`, …) are ignored.
pub fn find_phone<'a>(phones: &'a [Phone], v: &Value) -> Option<&'a Phone> {
    let o = v.as_object()?;
    let cc = o.get("countryCode").and_then(as_u64)?;
    let number = o.get("phone").and_then(as_text)?;
    let ext = match o.get("extension") {
        None | Some(Value::Null) => String::new(),
        Some(e) => as_text(e)?,
    };
    let ty = match o.get("phoneType") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => return None,
    };
    phones.iter().find(|p| {
        u64::from(p.country_code) == cc
            && p.phone == number
            && p.extension == ext
            && ty.is_none_or(|t| t.eq_ignore_ascii_case(&p.phone_type))
    })
}

/// performExternalAuthentication's container after type checks.
struct ExtArgs {
    username: String,
    password: Option<String>,
    code: Option<String>,
    second: Option<String>,
    vendor: String,
}

fn ext_args(p: &[Value]) -> Result<ExtArgs, ApiError> {
    if p.len() != 1 {
        return Err(ApiError::public(format!(
            "performExternalAuthentication takes 1 parameter, {} given.",
            p.len()
        )));
    }
    let Value::Object(c) = &p[0] else {
        return Err(ApiError::public(
            "Invalid parameter 1: expected a SoftLayer_Container_User_Customer_External_Binding object.",
        ));
    };
    let opt = |k: &str| -> Result<Option<String>, ApiError> {
        match c.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // a code sent as a number is read as its digits
            Some(Value::Number(n)) if k.ends_with("ecurityCode") => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::public(format!(
                "Invalid property {k}: it must be a string."
            ))),
        }
    };
    let username =
        opt("username")?.ok_or_else(|| ApiError::public("Property username is required."))?;
    let vendor = match opt("vendor")? {
        Some(v) => v,
        None => match opt("complexType")?.as_deref() {
            Some(t) if t.ends_with("_Totp") => "TOTP".into(),
            Some(t) if t.ends_with("_Verisign") => "VERISIGN".into(),
            _ => {
                return Err(ApiError::public(
                    "Property vendor is required (TOTP or VERISIGN).",
                ))
            }
        },
    };
    Ok(ExtArgs {
        username,
        password: opt("password")?,
        code: opt("securityCode")?,
        second: opt("secondSecurityCode")?.filter(|s| !s.is_empty()),
        vendor,
    })
}

fn wrong_code(b: &Binding) -> ApiError {
    match b.wrong_code_answer {
        WrongCodeAnswer::LoginFailed => err(CODE_LOGIN_FAILED, MSG_LOGIN_FAILED),
        WrongCodeAnswer::Public => err(CODE_PUBLIC, MSG_LOGIN_FAILED),
        WrongCodeAnswer::AuthFailed => err(CODE_AUTH_FAILED, MSG_AUTH_FAILED),
    }
}

impl Portal {
    /// `SoftLayer_User_Customer_External_Binding_Phone/{id}/{method}` (service credentials).
    pub(crate) fn phone_call(
        &self,
        route: &Route,
        call: &Call,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        let method = route.method.as_str();
        if !PHONE_METHODS.contains(&method) {
            return Err(ApiError::not_found(format!(
                "Method \"{method}\" does not exist on service {SVC_PHONE}."
            )));
        }
        if !self.authorized(call.authorization) {
            return Err(ApiError::new(401, CODE_PUBLIC, MSG_ACCESS_DENIED));
        }
        let raw_id = route.id.as_deref().unwrap_or("");
        let binding = raw_id
            .parse::<u64>()
            .ok()
            .and_then(|id| self.binding(id))
            .map(|(_, b)| b)
            .filter(|b| b.is_phone())
            .ok_or_else(|| {
                ApiError::not_found(format!("Unable to find object with id of '{raw_id}'."))
            })?;
        let fixture_blocked = binding.status == "BLOCKED";
        match method {
            "getBindingStatus" => {
                let blocked = fixture_blocked || self.phone().is_blocked(binding.id, now);
                Ok(ok(json!(if blocked { "BLOCKED" } else { "ACTIVE" })))
            }
            "getAuthenticationMode" => Ok(ok(
                json!({"mode": binding.mode, "pinMode": binding.pin_mode}),
            )),
            "getPhoneData" => Ok(ok(Value::Array(
                binding.phones.iter().map(phone_json).collect(),
            ))),
            "requestPhoneValidation" => {
                let p = parameters(call)?;
                let [v] = p.as_slice() else {
                    return Err(ApiError::public(format!(
                        "requestPhoneValidation takes 1 parameter, {} given.",
                        p.len()
                    )));
                };
                let phone = find_phone(&binding.phones, v).ok_or_else(|| {
                    ApiError::public("The phone number given is not one of this binding's phones.")
                })?;
                let primary = phone.phone_type == "PRIMARY";
                match self
                    .phone()
                    .request(binding.id, &phone.phone, primary, fixture_blocked, now)
                {
                    Ok(token) => Ok(ok(json!(token))),
                    Err(RequestError::Exceeded) => Err(err(CODE_EXCEPTION, MSG_EXCEEDED)),
                    Err(RequestError::Unreachable) => Err(err(CODE_EXCEPTION, MSG_UNREACHABLE)),
                }
            }
            _ => {
                // checkPhoneValidationResult
                let p = parameters(call)?;
                let [Value::String(token)] = p.as_slice() else {
                    return Err(ApiError::public(
                        "checkPhoneValidationResult takes 1 parameter: the token (a string).",
                    ));
                };
                match self.phone().check(binding.id, token, now) {
                    Check::Approved => Ok(ok(json!(true))),
                    Check::Awaiting => Err(err(CODE_AWAITING, MSG_AWAITING)),
                    Check::Failed(_) => Err(err(CODE_PHONE_FAILED, MSG_PHONE_FAILED)),
                    Check::InvalidToken => Err(err(CODE_BAD_TOKEN, MSG_BAD_TOKEN)),
                }
            }
        }
    }

    /// performExternalAuthentication (no auth). Check order: locked → LoginFailed (counted)
    /// → IP restriction → no active binding of the vendor → status → code (a wrong one is
    /// counted) → success (the username's failures are cleared).
    pub(crate) fn external_auth(&self, call: &Call, now: Instant) -> Result<Reply, ApiError> {
        let args = ext_args(&parameters(call)?)?;
        let ip = ipnet::normalize(call.peer);
        let mut locks = self.lockouts();
        // 1.–3. locked, unknown username or wrong password, IP restriction
        let user = self.check_password(
            &mut locks,
            &args.username,
            args.password.as_deref(),
            ip,
            now,
        )?;
        // 4. no active binding of that vendor: not counted
        let Some(binding) = user
            .bindings
            .iter()
            .find(|b| b.active && b.is_vendor(&args.vendor))
        else {
            return Err(ApiError::public(MSG_LOGIN_FAILED));
        };
        // 5. status other than ACTIVE: not counted
        if let Some(e) = bad_status(user) {
            return Err(e);
        }
        // 6. the code(s): a wrong one is counted
        let code_ok = args.code.as_deref() == Some(binding.code.as_str());
        let verisign = binding.is_vendor("VERISIGN");
        if code_ok && verisign && binding.out_of_sync {
            match args.second.as_deref() {
                None => return Err(err(CODE_SECOND_CODE, MSG_SECOND_CODE)),
                Some(s) if s == binding.second_code => {}
                Some(_) => {
                    locks.record_failure(&args.username, ip, now);
                    return Err(wrong_code(binding));
                }
            }
        } else if !code_ok {
            locks.record_failure(&args.username, ip, now);
            return Err(wrong_code(binding));
        }
        // 7. success
        locks.clear_user(&args.username);
        Ok(ok(json!({"userId": user.id, "hash": util::random_hex(32)})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{parse_route, CODE_BAD_STATUS, CODE_LOCKED, MSG_BAD_IP, MSG_LOCKED};
    use crate::fixture::Fixture;
    use std::net::IpAddr;
    use std::time::Duration;

    const FIX: &str = r#"
[account]
api_user = "SL100001"
api_key = "0123456789abcdef"

[lockout]
max_failures = 3

[phone]
max_requests = 3

[[users]]
id = 5006
username = "frank"
password = "Frank-Phone8"
bindings = [{ id = 9001, vendor = "PHONE_FACTOR", mode = "SMS_TEXT", pin_mode = "OTP",
              phones = [{ country_code = 1, phone = "5125550100", extension = "", type = "PRIMARY" },
                        { country_code = 1, phone = "5125550199", type = "BACKUP" }],
              behaviour = "approve", delay_ms = 0, primary_fails = true }]

[[users]]
id = 5007
username = "grace"
password = "Grace-Totp42"
bindings = [{ id = 9002, vendor = "TOTP", code = "123456" }]

[[users]]
id = 5008
username = "heidi"
password = "Heidi-Vip77"
bindings = [{ id = 9003, vendor = "VERISIGN", code = "111111", second_code = "222222", out_of_sync = true }]

[[users]]
id = 5009
username = "ivan"
password = "Ivan-Codes55"
status = "SUSPENDED"
bindings = [{ id = 9004, vendor = "totp", wrong_code_answer = "auth_failed" },
            { id = 9005, vendor = "PHONE_FACTOR", status = "BLOCKED" }]

[[users]]
id = 5010
username = "judy"
password = "Judy-Codes66"
ip_restriction = "10.0.0.0/8"
bindings = [{ id = 9006, vendor = "VERISIGN", wrong_code_answer = "public" },
            { id = 9007, vendor = "TOTP", active = false }]
"#;

    const AUTH: &str = "Basic U0wxMDAwMDE6MDEyMzQ1Njc4OWFiY2RlZg==";
    const LOCAL: &str = "127.0.0.1";

    fn portal() -> Portal {
        Portal::new(Fixture::parse(FIX).unwrap())
    }

    fn call(p: &Portal, verb: &str, path: &str, body: Value, auth: Option<&str>) -> Reply {
        let body = body.to_string();
        let c = Call {
            http_method: verb,
            query: "",
            body: body.as_bytes(),
            authorization: auth,
            peer: LOCAL.parse().unwrap(),
        };
        p.handle(parse_route(path).as_ref(), &c, Instant::now())
    }

    fn phone(p: &Portal, id: &str, method: &str, params: Value) -> Reply {
        let path = format!("/rest/v3.1/{SVC_PHONE}/{id}/{method}.json");
        call(
            p,
            "POST",
            &path,
            json!({ "parameters": params }),
            Some(AUTH),
        )
    }

    fn ext(p: &Portal, c: Value) -> Reply {
        call(
            p,
            "POST",
            "/rest/v3.1/SoftLayer_User_Customer/performExternalAuthentication.json",
            json!({ "parameters": [c] }),
            None,
        )
    }

    fn e(r: &Reply) -> (u16, String, String) {
        (
            r.status,
            r.body["code"].as_str().unwrap_or("").into(),
            r.body["error"].as_str().unwrap_or("").into(),
        )
    }

    #[test]
    fn phone_getters_and_errors() {
        let p = portal();
        let r = phone(&p, "9001", "getBindingStatus", json!([]));
        assert_eq!((r.status, r.body.clone()), (200, json!("ACTIVE")));
        let r = phone(&p, "9005", "getBindingStatus", json!([]));
        assert_eq!(r.body, json!("BLOCKED"));
        let r = phone(&p, "9001", "getAuthenticationMode", json!([]));
        assert_eq!(r.body, json!({"mode": "SMS_TEXT", "pinMode": "OTP"}));
        let r = phone(&p, "9001", "getPhoneData", json!([]));
        assert_eq!(
            r.body,
            json!([
                {"countryCode": 1, "phone": "5125550100", "extension": "", "phoneType": "PRIMARY"},
                {"countryCode": 1, "phone": "5125550199", "extension": "", "phoneType": "BACKUP"}
            ])
        );
        // GET works for the getters; defaults on a bare binding
        let path = format!("/rest/v3.1/{SVC_PHONE}/9005/getAuthenticationMode");
        let r = call(&p, "GET", &path, json!(null), Some(AUTH));
        assert_eq!(r.body, json!({"mode": "VOICE_CALL", "pinMode": "STANDARD"}));
        // not a phone binding, unknown, not a number, no id → 404
        for id in ["9002", "1", "abc"] {
            let r = phone(&p, id, "getBindingStatus", json!([]));
            assert_eq!(
                (r.status, r.result.as_str()),
                (404, crate::api::CODE_NOT_FOUND)
            );
        }
        let r = call(
            &p,
            "GET",
            &format!("/rest/v3.1/{SVC_PHONE}/getBindingStatus"),
            json!(null),
            Some(AUTH),
        );
        assert_eq!(r.status, 404);
        let r = phone(&p, "9001", "getNope", json!([]));
        assert_eq!(r.status, 404);
        // service credentials required
        let path = format!("/rest/v3.1/{SVC_PHONE}/9001/getBindingStatus");
        assert_eq!(call(&p, "GET", &path, json!(null), None).status, 401);
        assert_eq!(
            call(&p, "GET", &path, json!(null), Some("Basic eDp5")).status,
            401
        );
        // bad parameters
        let backup = json!({"countryCode": 1, "phone": "5125550199", "phoneType": "BACKUP"});
        for params in [
            json!([]),
            json!([backup, backup]),
            json!(["5125550199"]),
            json!([{"countryCode": 1, "phone": "5125550000"}]),
            json!([{"countryCode": 44, "phone": "5125550199"}]),
            json!([{"countryCode": 1, "phone": "5125550199", "extension": "7"}]),
            json!([{"countryCode": 1, "phone": "5125550199", "phoneType": "PRIMARY"}]),
        ] {
            let r = phone(&p, "9001", "requestPhoneValidation", params.clone());
            assert_eq!(
                (r.status, r.result.as_str()),
                (500, CODE_PUBLIC),
                "{params}"
            );
        }
        for params in [json!([]), json!([5]), json!(["a", "b"])] {
            let r = phone(&p, "9001", "checkPhoneValidationResult", params);
            assert_eq!(r.result, CODE_PUBLIC);
        }
    }

    #[test]
    fn phone_request_and_check() {
        let p = portal();
        // primary_fails: the PRIMARY phone cannot be reached, BACKUP works
        let primary = json!({"countryCode": 1, "phone": "5125550100", "extension": "", "phoneType": "PRIMARY"});
        let r = phone(&p, "9001", "requestPhoneValidation", json!([primary]));
        assert_eq!(e(&r), (500, CODE_EXCEPTION.into(), MSG_UNREACHABLE.into()));
        // a loosely written phone object still names the backup phone
        let backup = json!({"complexType": "SoftLayer_Container_User_Customer_External_Binding_Phone",
                            "countryCode": "1", "phone": "5125550199", "extension": null});
        let r = phone(&p, "9001", "requestPhoneValidation", json!([backup]));
        assert_eq!(r.status, 200);
        let token = r.body.as_str().unwrap().to_string();
        let r = phone(&p, "9001", "checkPhoneValidationResult", json!([token]));
        assert_eq!((r.status, r.body.clone()), (200, json!(true)));
        let r = phone(&p, "9001", "checkPhoneValidationResult", json!([token]));
        assert_eq!(e(&r), (500, CODE_BAD_TOKEN.into(), MSG_BAD_TOKEN.into()));
        // max_requests = 3: the unreachable one counted
        phone(&p, "9001", "requestPhoneValidation", json!([backup]));
        let r = phone(&p, "9001", "requestPhoneValidation", json!([backup]));
        assert_eq!(e(&r), (500, CODE_EXCEPTION.into(), MSG_EXCEEDED.into()));
        // fixture-blocked binding
        let r = phone(
            &p,
            "9005",
            "requestPhoneValidation",
            json!([{"countryCode": 1, "phone": "5125550100"}]),
        );
        assert_eq!(e(&r).2, MSG_EXCEEDED);
        p.reset();
        let r = phone(&p, "9001", "requestPhoneValidation", json!([backup]));
        assert_eq!(r.status, 200);
    }

    #[test]
    fn phone_awaiting_and_failed_codes() {
        let p = portal();
        let mut st = p.phone().settings(9001).unwrap();
        st.behaviour = crate::fixture::Behaviour::Manual;
        p.phone().set_settings(9001, st);
        let backup = json!({"countryCode": 1, "phone": "5125550199"});
        let token = phone(&p, "9001", "requestPhoneValidation", json!([backup]))
            .body
            .as_str()
            .unwrap()
            .to_string();
        let r = phone(&p, "9001", "checkPhoneValidationResult", json!([token]));
        assert_eq!(e(&r), (500, CODE_AWAITING.into(), MSG_AWAITING.into()));
        let now = Instant::now();
        assert_eq!(
            p.phone().answer(&[9001], crate::phone::Answer::Deny, now),
            Some(9001)
        );
        let r = phone(&p, "9001", "checkPhoneValidationResult", json!([token]));
        assert_eq!(
            e(&r),
            (500, CODE_PHONE_FAILED.into(), MSG_PHONE_FAILED.into())
        );
        let r = phone(&p, "9001", "checkPhoneValidationResult", json!([token]));
        assert_eq!(e(&r).1, CODE_BAD_TOKEN);
    }

    #[test]
    fn totp_and_verisign() {
        let p = portal();
        let totp = |u: &str, pw: &str, code: &str| {
            json!({"complexType": "SoftLayer_Container_User_Customer_External_Binding_Totp",
                   "username": u, "password": pw, "securityCode": code, "vendor": "TOTP"})
        };
        let r = ext(&p, totp("grace", "Grace-Totp42", "123456"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body["userId"], 5007);
        assert_eq!(r.body["hash"].as_str().unwrap().len(), 64);
        // vendor from complexType alone; a code sent as a number
        let r = ext(
            &p,
            json!({"complexType": "SoftLayer_Container_User_Customer_External_Binding_Totp",
                   "username": "grace", "password": "Grace-Totp42", "securityCode": 123456}),
        );
        assert_eq!(r.status, 200);
        let r = ext(&p, totp("grace", "Grace-Totp42", "000000"));
        assert_eq!(
            e(&r),
            (500, CODE_LOGIN_FAILED.into(), MSG_LOGIN_FAILED.into())
        );
        let r = ext(&p, totp("grace", "wrong", "123456"));
        assert_eq!(e(&r).1, CODE_LOGIN_FAILED);
        let r = ext(&p, totp("nobody", "x", "123456"));
        assert_eq!(e(&r).1, CODE_LOGIN_FAILED);
        p.reset(); // the address has 3 failures now: locked
                   // no active binding of the vendor (judy's TOTP is inactive; heidi has VERISIGN)
        for (u, pw) in [("heidi", "Heidi-Vip77"), ("frank", "Frank-Phone8")] {
            let r = ext(&p, totp(u, pw, "111111"));
            assert_eq!(
                e(&r),
                (500, CODE_PUBLIC.into(), MSG_LOGIN_FAILED.into()),
                "{u}"
            );
        }
        // status after the binding, before the code
        let r = ext(&p, totp("ivan", "Ivan-Codes55", "999999"));
        assert_eq!(
            e(&r),
            (
                500,
                CODE_BAD_STATUS.into(),
                "User account is currently suspended.".into()
            )
        );
        // VeriSign out of sync
        let vs = |code: &str, second: Option<&str>| {
            let mut c = json!({"complexType": "SoftLayer_Container_User_Customer_External_Binding_Verisign",
                               "username": "heidi", "password": "Heidi-Vip77", "securityCode": code,
                               "vendor": "VERISIGN"});
            if let Some(s) = second {
                c["secondSecurityCode"] = json!(s);
            }
            c
        };
        let r = ext(&p, vs("111111", None));
        assert_eq!(
            e(&r),
            (500, CODE_SECOND_CODE.into(), MSG_SECOND_CODE.into())
        );
        assert!(MSG_SECOND_CODE.contains("synchronization.  Please"));
        let r = ext(&p, vs("111111", Some("")));
        assert_eq!(e(&r).1, CODE_SECOND_CODE);
        let r = ext(&p, vs("111111", Some("222222")));
        assert_eq!((r.status, r.body["userId"].clone()), (200, json!(5008)));
        let r = ext(&p, vs("111111", Some("999999")));
        assert_eq!(e(&r).1, CODE_LOGIN_FAILED);
        let r = ext(&p, vs("000000", Some("222222")));
        assert_eq!(e(&r).1, CODE_LOGIN_FAILED);
        // wrong_code_answer variants; judy is outside her IP list first
        let r = ext(
            &p,
            json!({"username": "judy", "password": "Judy-Codes66", "securityCode": "1", "vendor": "VERISIGN"}),
        );
        assert_eq!(e(&r), (500, CODE_PUBLIC.into(), MSG_BAD_IP.into()));
        let judy = |code: &str| {
            let body = json!({"parameters": [{"username": "judy", "password": "Judy-Codes66",
                                              "securityCode": code, "vendor": "verisign"}]})
            .to_string();
            let c = Call {
                http_method: "POST",
                query: "",
                body: body.as_bytes(),
                authorization: None,
                peer: "10.1.2.3".parse().unwrap(),
            };
            let route =
                parse_route("/rest/v3/SoftLayer_User_Customer/performExternalAuthentication");
            p.handle(route.as_ref(), &c, Instant::now())
        };
        assert_eq!(
            e(&judy("1")),
            (500, CODE_PUBLIC.into(), MSG_LOGIN_FAILED.into())
        );
        assert_eq!(judy("123456").status, 200);
        let q = Portal::new(Fixture::parse(&FIX.replace("status = \"SUSPENDED\"\n", "")).unwrap());
        let r = ext(&q, totp("ivan", "Ivan-Codes55", "999999"));
        assert_eq!(
            e(&r),
            (500, CODE_AUTH_FAILED.into(), MSG_AUTH_FAILED.into())
        );
        // bad containers
        for c in [
            json!("grace"),
            json!({"password": "x", "vendor": "TOTP"}),
            json!({"username": "grace", "password": "Grace-Totp42", "securityCode": "123456"}),
            json!({"username": 5, "vendor": "TOTP"}),
        ] {
            let r = ext(&p, c.clone());
            assert_eq!(r.result, CODE_PUBLIC, "{c}");
        }
    }

    #[test]
    fn wrong_codes_lock_the_user() {
        let p = portal(); // lockout max_failures = 3
        let c = |code: &str| json!({"username": "grace", "password": "Grace-Totp42", "securityCode": code, "vendor": "TOTP"});
        for _ in 0..3 {
            assert_eq!(ext(&p, c("000000")).result, CODE_LOGIN_FAILED);
        }
        let r = ext(&p, c("123456"));
        assert_eq!(e(&r), (500, CODE_LOCKED.into(), MSG_LOCKED.into()));
        let ip: IpAddr = LOCAL.parse().unwrap();
        let later = Instant::now() + Duration::from_secs(1801);
        assert!(!p.lockouts().is_locked("grace", ip, later));
        // a success clears the username's failures
        p.reset();
        ext(&p, c("000000"));
        ext(&p, c("000000"));
        assert_eq!(ext(&p, c("123456")).status, 200);
        assert_eq!(p.lockouts().user_failures("grace", Instant::now()), 0);
    }

    #[test]
    fn summaries() {
        let p = portal();
        let body = json!({"parameters": [{"username": "grace", "password": "Grace-Totp42",
                                          "securityCode": "123456", "vendor": "TOTP"}]})
        .to_string();
        let c = Call {
            http_method: "POST",
            query: "",
            body: body.as_bytes(),
            authorization: None,
            peer: LOCAL.parse().unwrap(),
        };
        let route = parse_route("/rest/v3.1/SoftLayer_User_Customer/performExternalAuthentication");
        let s = p.summarize(route.as_ref(), &c);
        assert_eq!(s.username.as_deref(), Some("grace"));
        assert!(s.password_sent && s.question_id.is_none());
        let route = parse_route(&format!("/rest/v3.1/{SVC_PHONE}/9001/getPhoneData"));
        let c = Call { body: b"", ..c };
        assert_eq!(
            p.summarize(route.as_ref(), &c).username.as_deref(),
            Some("frank")
        );
        let route = parse_route(&format!("/rest/v3.1/{SVC_PHONE}/77/getPhoneData"));
        assert_eq!(p.summarize(route.as_ref(), &c).username, None);
    }
}
