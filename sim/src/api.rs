//! The emulated API itself (PROTOCOL.md 1 and 2.1–2.3; the phone binding service and
//! performExternalAuthentication, 2.4 and 2.5, are in `external.rs`), independent of HTTP
//! plumbing and faults: a parsed request goes in, a status, a JSON body and a result word come
//! out.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::fixture::{self, Fixture, User};
use crate::ipnet::{self, IpRule};
use crate::lockout::Lockouts;
use crate::phone::PhoneState;
use crate::util;

pub const CODE_PUBLIC: &str = "SoftLayer_Exception_Public";
pub const CODE_NOT_FOUND: &str = "SoftLayer_Exception_ObjectNotFound";
pub const CODE_LOGIN_FAILED: &str = "SoftLayer_Exception_User_Customer_LoginFailed";
pub const CODE_LOCKED: &str = "SoftLayer_Exception_User_Customer_AccountLocked";
pub const CODE_BAD_ANSWER: &str = "SoftLayer_Exception_User_Customer_InvalidSecurityQuestionAnswer";
pub const CODE_BAD_STATUS: &str = "SoftLayer_Exception_User_Customer_InvalidUserStatus";
pub const CODE_PHONE_REQUIRED: &str =
    "SoftLayer_Exception_User_Customer_External_Binding_PhoneAuthenticationRequired";
pub const CODE_TOTP_REQUIRED: &str =
    "SoftLayer_Exception_User_Customer_External_Binding_TotpAuthenticationRequired";
pub const CODE_CODE_REQUIRED: &str =
    "SoftLayer_Exception_User_Customer_External_Binding_SecurityCodeRequired";

pub const MSG_ACCESS_DENIED: &str = "Access Denied. ";
pub const MSG_LOGIN_FAILED: &str = "Invalid login credentials provided.";
pub const MSG_LOCKED: &str = "Account has been locked for 30 minutes.";
pub const MSG_BAD_ANSWER: &str = "Invalid answer provided for security question.";
pub const MSG_BAD_IP: &str = "Unauthorized IP Address!";
pub const MSG_PHONE_REQUIRED: &str =
    "Phone-based authentication is required to log in with this user";
pub const MSG_TOTP_REQUIRED: &str =
    "Time-based One Time Password authentication is required to log in with this user";
pub const MSG_CODE_REQUIRED: &str =
    "You must supply external authentication credentials to log in with this user";

/// `{base}/{Service}[/{id}]/{method}[.json]` split up. `None` when the path is not under
/// `/rest/v3.1/` or `/rest/v3/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub service: String,
    pub id: Option<String>,
    pub method: String,
}

pub fn parse_route(path: &str) -> Option<Route> {
    let rest = path
        .strip_prefix("/rest/v3.1/")
        .or_else(|| path.strip_prefix("/rest/v3/"))?;
    let segs: Vec<String> = rest
        .trim_end_matches('/')
        .split('/')
        .map(|s| util::pct_decode(s, false))
        .collect();
    let strip = |s: &str| s.strip_suffix(".json").unwrap_or(s).to_string();
    match segs.as_slice() {
        [svc] if !svc.is_empty() => Some(Route {
            service: strip(svc),
            id: None,
            method: "getObject".into(),
        }),
        [svc, m] if !svc.is_empty() && !m.is_empty() => Some(Route {
            service: svc.clone(),
            id: None,
            method: strip(m),
        }),
        [svc, id, m] if !svc.is_empty() && !id.is_empty() && !m.is_empty() => Some(Route {
            service: svc.clone(),
            id: Some(id.clone()),
            method: strip(m),
        }),
        _ => None,
    }
}

/// What the handler needs from an HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub http_method: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
    pub authorization: Option<&'a str>,
    pub peer: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub(crate) fn public(message: impl Into<String>) -> ApiError {
        ApiError::new(500, CODE_PUBLIC, message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, CODE_NOT_FOUND, message)
    }
    pub fn body(&self) -> Value {
        json!({"error": self.message, "code": self.code})
    }
}

/// A finished API answer: HTTP status, JSON body, and the word for the calls log
/// (`"ok"` or the error code).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub result: String,
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply {
            status: e.status,
            body: e.body(),
            result: e.code.to_string(),
        }
    }
}

pub(crate) fn ok(body: Value) -> Reply {
    Reply {
        status: 200,
        body,
        result: "ok".into(),
    }
}

/// The parts of a call the calls log shows (never a password, answer or hash).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallSummary {
    pub username: Option<String>,
    pub question_id: Option<Value>,
    pub password_sent: bool,
}

/// The `parameters` array of a POST body. GET bodies are ignored.
pub(crate) fn parameters(call: &Call) -> Result<Vec<Value>, ApiError> {
    if call.http_method.eq_ignore_ascii_case("GET") || call.body.iter().all(u8::is_ascii_whitespace)
    {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_slice(call.body)
        .map_err(|_| ApiError::public("Unable to parse the request body: it is not valid JSON."))?;
    match v {
        Value::Object(mut m) => match m.remove("parameters") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(ApiError::public(
                "Invalid request body: \"parameters\" must be an array.",
            )),
        },
        _ => Err(ApiError::public(
            "Invalid request body: expected an object with a \"parameters\" array.",
        )),
    }
}

pub fn summarize(route: Option<&Route>, call: &Call) -> CallSummary {
    let Some(route) = route else {
        return CallSummary::default();
    };
    match (route.service.as_str(), route.method.as_str()) {
        ("SoftLayer_User_Customer", "getPortalLoginToken") => {
            let p = parameters(call).unwrap_or_default();
            CallSummary {
                username: p.first().and_then(Value::as_str).map(str::to_string),
                question_id: p.get(2).filter(|v| !v.is_null()).cloned(),
                password_sent: p.get(1).is_some_and(|v| !v.is_null()),
            }
        }
        ("SoftLayer_User_Customer", "performExternalAuthentication") => {
            let p = parameters(call).unwrap_or_default();
            let c = p.first();
            CallSummary {
                username: c
                    .and_then(|c| c.get("username"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                question_id: None,
                password_sent: c
                    .and_then(|c| c.get("password"))
                    .is_some_and(|v| !v.is_null()),
            }
        }
        ("SoftLayer_Account", "getUsers") => {
            let q = util::parse_query(call.query);
            let username = parse_user_filter(util::query_get(&q, "objectFilter"))
                .ok()
                .and_then(|f| f.username)
                .map(|m| match m {
                    StrMatch::Exact(s) | StrMatch::CaseInsensitive(s) => s,
                });
            CallSummary {
                username,
                ..CallSummary::default()
            }
        }
        _ => CallSummary::default(),
    }
}

// ---------------------------------------------------------------------------------------
// objectFilter / objectMask

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrMatch {
    /// `{"operation": "x"}`
    Exact(String),
    /// `{"operation": "_= x"}`
    CaseInsensitive(String),
}

impl StrMatch {
    fn matches(&self, s: &str) -> bool {
        match self {
            StrMatch::Exact(x) => x == s,
            StrMatch::CaseInsensitive(x) => x.to_lowercase() == s.to_lowercase(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub username: Option<StrMatch>,
    pub id: Option<u64>,
}

/// Parse getUsers' objectFilter: `{"users":{"username":{"operation":"x"}}}` (also `"_= x"`)
/// and `{"users":{"id":{"operation":5001}}}`. Other properties are ignored. No filter → all.
pub fn parse_user_filter(raw: Option<&str>) -> Result<UserFilter, String> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(UserFilter::default());
    };
    let v: Value = serde_json::from_str(raw).map_err(|_| "objectFilter is not valid JSON")?;
    let Value::Object(top) = v else {
        return Err("objectFilter must be a JSON object".into());
    };
    let mut f = UserFilter::default();
    let Some(users) = top.get("users") else {
        return Ok(f);
    };
    let Value::Object(users) = users else {
        return Err("objectFilter: \"users\" must be an object".into());
    };
    if let Some(u) = users.get("username") {
        let op = u
            .get("operation")
            .ok_or("objectFilter: username needs an \"operation\"")?;
        let Value::String(op) = op else {
            return Err("objectFilter: username operation must be a string".into());
        };
        f.username = Some(match op.strip_prefix("_=") {
            Some(rest) => StrMatch::CaseInsensitive(rest.trim().to_string()),
            None => StrMatch::Exact(op.clone()),
        });
    }
    if let Some(i) = users.get("id") {
        let op = i
            .get("operation")
            .ok_or("objectFilter: id needs an \"operation\"")?;
        let id = match op {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or("objectFilter: id operation must be an integer")?;
        f.id = Some(id);
    }
    Ok(f)
}

/// Top-level property names an objectMask selects: `mask[a,b[c],d.e]`, `mask.a`,
/// `mask(Type)[...]`, or the old `a;b.c` form.
pub fn mask_names(mask: &str) -> HashSet<String> {
    let mut m = mask.trim();
    if let Some(rest) = m.strip_prefix("mask") {
        m = rest;
    }
    if m.starts_with('(') {
        m = m.find(')').map_or("", |i| &m[i + 1..]);
    }
    let mut names = HashSet::new();
    let mut push = |item: &str| {
        let item = item.trim().trim_start_matches('.');
        let end = item.find(['[', '.', '(']).unwrap_or(item.len());
        let name = item[..end].trim();
        if !name.is_empty() {
            names.insert(name.to_string());
        }
    };
    if let Some(inner) = m.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        let mut depth = 0i32;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' => depth -= 1,
                ',' if depth == 0 => {
                    push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        push(&inner[start..]);
    } else {
        for item in m.split([';', ',']) {
            push(item);
        }
    }
    names
}

// ---------------------------------------------------------------------------------------
// The portal

pub struct Portal {
    pub(crate) fixture: Fixture,
    rules: HashMap<u64, Vec<IpRule>>,
    lockouts: Mutex<Lockouts>,
    phone: Mutex<PhoneState>,
}

/// getPortalLoginToken's arguments after type checks.
struct LoginArgs {
    username: String,
    password: Option<String>,
    question_id: Option<u64>,
    answer: Option<String>,
}

fn login_args(p: &[Value]) -> Result<LoginArgs, ApiError> {
    if p.len() > 4 {
        return Err(ApiError::public(format!(
            "getPortalLoginToken takes at most 4 parameters, {} given.",
            p.len()
        )));
    }
    let opt_str = |i: usize, what: &str| -> Result<Option<String>, ApiError> {
        match p.get(i) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::public(format!(
                "Invalid parameter {}: {what} must be a string.",
                i + 1
            ))),
        }
    };
    let username = opt_str(0, "username")?
        .ok_or_else(|| ApiError::public("Invalid parameter 1: a username is required."))?;
    let password = opt_str(1, "password")?;
    let question_id = match p.get(2) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| {
            ApiError::public("Invalid parameter 3: securityQuestionId must be an integer.")
        })?),
        Some(_) => {
            return Err(ApiError::public(
                "Invalid parameter 3: securityQuestionId must be an integer.",
            ))
        }
    };
    let answer = opt_str(3, "securityQuestionAnswer")?;
    Ok(LoginArgs {
        username,
        password,
        question_id,
        answer,
    })
}

pub fn binding_error(vendor: &str) -> ApiError {
    match vendor.to_ascii_uppercase().as_str() {
        "PHONE_FACTOR" => ApiError::public(MSG_PHONE_REQUIRED).with_code(CODE_PHONE_REQUIRED),
        "TOTP" => ApiError::public(MSG_TOTP_REQUIRED).with_code(CODE_TOTP_REQUIRED),
        // VERISIGN, and any vendor this emulator does not know.
        _ => ApiError::public(MSG_CODE_REQUIRED).with_code(CODE_CODE_REQUIRED),
    }
}

impl ApiError {
    pub(crate) fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }
}

/// InvalidUserStatus for a user whose status is not `ACTIVE` (not counted).
pub(crate) fn bad_status(user: &User) -> Option<ApiError> {
    (user.status != "ACTIVE").then(|| {
        ApiError::public(format!(
            "User account is currently {}.",
            user.status.to_lowercase()
        ))
        .with_code(CODE_BAD_STATUS)
    })
}

fn answers_match(expected: &str, given: &str) -> bool {
    expected.trim().to_lowercase() == given.trim().to_lowercase()
}

fn vendor_name(key: &str) -> String {
    match key.to_ascii_uppercase().as_str() {
        "PHONE_FACTOR" => "Phone Factor".into(),
        "TOTP" => "TOTP".into(),
        "VERISIGN" => "VeriSign".into(),
        _ => key.to_string(),
    }
}

impl Portal {
    pub fn new(fixture: Fixture) -> Portal {
        let rules = fixture.users.iter().map(|u| (u.id, u.ip_rules())).collect();
        let lockouts = Mutex::new(Lockouts::new(fixture.lockout));
        let phone = Mutex::new(PhoneState::new(
            fixture.phone,
            fixture
                .users
                .iter()
                .flat_map(|u| &u.bindings)
                .filter(|b| b.is_phone()),
        ));
        Portal {
            fixture,
            rules,
            lockouts,
            phone,
        }
    }

    pub fn fixture(&self) -> &Fixture {
        &self.fixture
    }

    pub fn lockouts(&self) -> std::sync::MutexGuard<'_, Lockouts> {
        self.lockouts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The phone validations' state (PROTOCOL 2.4).
    pub fn phone(&self) -> std::sync::MutexGuard<'_, PhoneState> {
        self.phone.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clear all run-time state: lockouts, phone validations, request counts, failures,
    /// blocks, and run-time behaviour changes.
    pub fn reset(&self) {
        self.lockouts().reset();
        self.phone().reset();
    }

    /// The calls-log summary of a call: [`summarize`], plus for phone binding calls the
    /// binding's username.
    pub fn summarize(&self, route: Option<&Route>, call: &Call) -> CallSummary {
        let mut s = summarize(route, call);
        if let Some(r) = route.filter(|r| r.service == crate::external::SVC_PHONE) {
            s.username =
                r.id.as_deref()
                    .and_then(|id| id.parse().ok())
                    .and_then(|id| self.binding(id))
                    .map(|(u, _)| u.username.clone());
        }
        s
    }

    /// The user owning binding `id`, and the binding.
    pub fn binding(&self, id: u64) -> Option<(&User, &fixture::Binding)> {
        self.fixture
            .users
            .iter()
            .find_map(|u| u.bindings.iter().find(|b| b.id == id).map(|b| (u, b)))
    }

    /// Answer one API call. `route` is `None` for paths outside the API base.
    pub fn handle(&self, route: Option<&Route>, call: &Call, now: Instant) -> Reply {
        let Some(route) = route else {
            return ApiError::not_found("Not found: use /rest/v3.1/{Service}/{method}.json").into();
        };
        let res = match (route.service.as_str(), route.method.as_str()) {
            ("SoftLayer_Account", "getUsers") => self.get_users(call),
            ("SoftLayer_User_Security_Question", "getAllObjects") => Ok(self.questions()),
            ("SoftLayer_User_Customer", "getPortalLoginToken") => {
                if call.http_method.eq_ignore_ascii_case("GET")
                    || call.http_method.eq_ignore_ascii_case("POST")
                {
                    self.login(call, now)
                } else {
                    Err(ApiError::public(format!(
                        "HTTP method {} is not supported here.",
                        call.http_method
                    )))
                }
            }
            ("SoftLayer_User_Customer", "performExternalAuthentication") => {
                self.external_auth(call, now)
            }
            (crate::external::SVC_PHONE, _) => self.phone_call(route, call, now),
            (
                "SoftLayer_Account"
                | "SoftLayer_User_Security_Question"
                | "SoftLayer_User_Customer",
                m,
            ) => Err(ApiError::not_found(format!(
                "Method \"{m}\" does not exist on service {}.",
                route.service
            ))),
            (s, _) => Err(ApiError::not_found(format!(
                "Service \"{s}\" does not exist."
            ))),
        };
        match res {
            Ok(r) => r,
            Err(e) => e.into(),
        }
    }

    pub(crate) fn authorized(&self, header: Option<&str>) -> bool {
        let Some(h) = header else { return false };
        let h = h.trim();
        let Some((scheme, cred)) = h.split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Some(raw) = util::base64_decode(cred.trim()) else {
            return false;
        };
        let want = format!(
            "{}:{}",
            self.fixture.account.api_user, self.fixture.account.api_key
        );
        raw == want.as_bytes()
    }

    fn get_users(&self, call: &Call) -> Result<Reply, ApiError> {
        if !self.authorized(call.authorization) {
            return Err(ApiError::new(401, CODE_PUBLIC, MSG_ACCESS_DENIED));
        }
        let q = util::parse_query(call.query);
        let filter = parse_user_filter(util::query_get(&q, "objectFilter"))
            .map_err(|e| ApiError::public(format!("Unable to parse object filter: {e}")))?;
        let mask = util::query_get(&q, "objectMask").map(mask_names);
        let mut users: Vec<Value> = self
            .fixture
            .users
            .iter()
            .filter(|u| {
                filter
                    .username
                    .as_ref()
                    .is_none_or(|m| m.matches(&u.username))
            })
            .filter(|u| filter.id.is_none_or(|id| id == u.id))
            .map(|u| user_json(u, mask.as_ref()))
            .collect();
        if let Some(limit) = util::query_get(&q, "resultLimit") {
            let nums: Vec<usize> = limit
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect();
            let (off, lim) = match nums.as_slice() {
                [l] => (0, *l),
                [o, l] => (*o, *l),
                _ => (0, usize::MAX),
            };
            users = users.into_iter().skip(off).take(lim).collect();
        }
        Ok(ok(Value::Array(users)))
    }

    fn questions(&self) -> Reply {
        let qs = self
            .fixture
            .questions
            .iter()
            .map(|q| {
                json!({"id": q.id, "question": q.question, "displayOrder": q.display_order, "viewable": 1})
            })
            .collect();
        ok(Value::Array(qs))
    }

    /// Steps 1–3 of getPortalLoginToken and performExternalAuthentication alike: a locked
    /// username or calling address (not counted), an unknown username or wrong password
    /// (counted), the calling address outside ipAddressRestriction (not counted).
    pub(crate) fn check_password(
        &self,
        locks: &mut Lockouts,
        username: &str,
        password: Option<&str>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<&User, ApiError> {
        if locks.is_locked(username, ip, now) {
            return Err(ApiError::public(MSG_LOCKED).with_code(CODE_LOCKED));
        }
        let user = self.fixture.users.iter().find(|u| u.username == username);
        let user = match user {
            Some(u) if password == Some(u.password.as_str()) => u,
            _ => {
                locks.record_failure(username, ip, now);
                return Err(ApiError::public(MSG_LOGIN_FAILED).with_code(CODE_LOGIN_FAILED));
            }
        };
        let rules = self.rules.get(&user.id).map_or(&[][..], Vec::as_slice);
        if !ipnet::allowed(rules, ip) {
            return Err(ApiError::public(MSG_BAD_IP));
        }
        Ok(user)
    }

    /// getPortalLoginToken, in PROTOCOL 2.3's check order.
    fn login(&self, call: &Call, now: Instant) -> Result<Reply, ApiError> {
        let args = login_args(&parameters(call)?)?;
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
        // 4. security question: counted
        let binding = user.active_binding();
        let answer_ok = match args.question_id {
            Some(qid) => {
                let expected = user.answers.iter().find(|a| a.question_id == qid);
                match (expected, args.answer.as_deref()) {
                    (Some(e), Some(g)) => answers_match(&e.answer, g),
                    _ => false,
                }
            }
            None => !(user.secondary_login_required && binding.is_none()),
        };
        if !answer_ok {
            locks.record_failure(&args.username, ip, now);
            return Err(ApiError::public(MSG_BAD_ANSWER).with_code(CODE_BAD_ANSWER));
        }
        // 5. status other than ACTIVE: not counted
        if let Some(e) = bad_status(user) {
            return Err(e);
        }
        // 6. an active external binding: the second factor is owed
        if let Some(b) = binding {
            return Err(binding_error(&b.vendor));
        }
        // 7. success: the username's failures are cleared
        locks.clear_user(&args.username);
        Ok(ok(json!({"userId": user.id, "hash": util::random_hex(32)})))
    }
}

/// A `SoftLayer_User_Customer` as getUsers returns it. Local properties always; relational
/// ones (`userStatus`, `securityAnswers`, `externalBindings`) only when the mask names them.
fn user_json(u: &User, mask: Option<&HashSet<String>>) -> Value {
    let (status_id, status_name) = fixture::status_info(&u.status).unwrap_or((0, "Unknown"));
    let mut m = Map::new();
    m.insert("id".into(), json!(u.id));
    m.insert("username".into(), json!(u.username));
    m.insert("userStatusId".into(), json!(status_id));
    if let Some(r) = &u.ip_restriction {
        m.insert("ipAddressRestriction".into(), json!(r));
    }
    m.insert(
        "secondaryLoginRequiredFlag".into(),
        json!(u.secondary_login_required),
    );
    m.insert("sslVpnAllowedFlag".into(), json!(u.ssl_vpn_allowed));
    let wants = |name: &str| mask.is_some_and(|m| m.contains(name));
    if wants("userStatus") {
        m.insert(
            "userStatus".into(),
            json!({"id": status_id, "keyName": u.status, "name": status_name}),
        );
    }
    if wants("securityAnswers") {
        let a: Vec<Value> = u
            .answers
            .iter()
            .enumerate()
            .map(|(i, a)| json!({"id": u.id * 10 + i as u64, "questionId": a.question_id, "userId": u.id}))
            .collect();
        m.insert("securityAnswers".into(), Value::Array(a));
    }
    if wants("externalBindings") {
        let b: Vec<Value> = u
            .bindings
            .iter()
            .map(|b| {
                json!({
                    "id": b.id,
                    "active": b.active,
                    "userId": u.id,
                    "vendor": {"keyName": b.vendor, "name": vendor_name(&b.vendor)},
                })
            })
            .collect();
        m.insert("externalBindings".into(), Value::Array(b));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FIX: &str = r#"
[account]
api_user = "SL100001"
api_key = "0123456789abcdef"

[lockout]
max_failures = 3

[[questions]]
id = 122
question = "First pet?"
display_order = 1
[[questions]]
id = 123
question = "First car?"
display_order = 2

[[users]]
id = 5001
username = "alice"
password = "Correct-Horse1"
secondary_login_required = true
answers = [ { question_id = 122, answer = "Rex" }, { question_id = 123, answer = "Beetle" } ]

[[users]]
id = 5002
username = "bob"
password = "Bob-Pass-123"
status = "VPN_ONLY"
answers = [ { question_id = 122, answer = "Tom" } ]

[[users]]
id = 5003
username = "erin"
password = "Erin-Pass-123"
ip_restriction = "198.51.100.0/24"

[[users]]
id = 5004
username = "frank"
password = "Frank-Pass-123"
secondary_login_required = true
bindings = [ { id = 9001, active = true, vendor = "phone_factor" } ]

[[users]]
id = 5005
username = "tina"
password = "Tina-Pass-123"
bindings = [ { id = 9002, active = false, vendor = "VERISIGN" }, { id = 9003, vendor = "TOTP" } ]

[[users]]
id = 5006
username = "vera"
password = "Vera-Pass-123"
status = "DISABLED"
bindings = [ { id = 9004, vendor = "VERISIGN" } ]

[[users]]
id = 5007
username = "cancel"
password = "Cancel-Pass-1"
status = "CANCEL_PENDING"
ip_restriction = ""
"#;

    fn portal() -> Portal {
        Portal::new(Fixture::parse(FIX).unwrap())
    }

    const LOCAL: &str = "127.0.0.1";

    fn login_from(p: &Portal, peer: &str, params: Value) -> Reply {
        let body = json!({ "parameters": params }).to_string();
        let call = Call {
            http_method: "POST",
            query: "",
            body: body.as_bytes(),
            authorization: None,
            peer: peer.parse().unwrap(),
        };
        let route = parse_route("/rest/v3.1/SoftLayer_User_Customer/getPortalLoginToken.json");
        p.handle(route.as_ref(), &call, Instant::now())
    }

    fn login(p: &Portal, params: Value) -> Reply {
        login_from(p, LOCAL, params)
    }

    fn err(r: &Reply) -> (u16, String, String) {
        (
            r.status,
            r.body["code"].as_str().unwrap_or("").to_string(),
            r.body["error"].as_str().unwrap_or("").to_string(),
        )
    }

    #[test]
    fn routes() {
        let r = parse_route("/rest/v3.1/SoftLayer_Account/getUsers.json").unwrap();
        assert_eq!(
            (r.service.as_str(), r.method.as_str(), r.id),
            ("SoftLayer_Account", "getUsers", None)
        );
        let r = parse_route("/rest/v3/SoftLayer_Account/getUsers").unwrap();
        assert_eq!(r.method, "getUsers");
        let r = parse_route(
            "/rest/v3.1/SoftLayer_User_Customer_External_Binding_Phone/9001/getBindingStatus.json",
        )
        .unwrap();
        assert_eq!(r.id.as_deref(), Some("9001"));
        assert_eq!(r.method, "getBindingStatus");
        assert!(parse_route("/rest/v2/SoftLayer_Account/getUsers").is_none());
        assert!(parse_route("/rest/v3.1/").is_none());
        assert!(parse_route("/rest/v3.1/a/b/c/d").is_none());
    }

    #[test]
    fn success_and_token() {
        let p = portal();
        let r = login(&p, json!(["alice", "Correct-Horse1", 122, "  rEX "]));
        assert_eq!(r.status, 200);
        assert_eq!(r.result, "ok");
        assert_eq!(r.body["userId"], 5001);
        assert_eq!(r.body["hash"].as_str().unwrap().len(), 64);
        // no question needed without secondary_login_required; fewer than 4 params accepted
        let r = login(&p, json!(["erin", "Erin-Pass-123"]));
        assert_eq!(err(&r).1, "SoftLayer_Exception_Public"); // erin: IP restriction
    }

    #[test]
    fn check_order_each_error() {
        let p = portal();
        // 2. unknown user / wrong password / missing password
        for params in [
            json!(["nobody", "x", null, null]),
            json!(["alice", "wrong", 122, "Rex"]),
            json!(["alice"]),
            json!(["Alice", "Correct-Horse1", 122, "Rex"]), // usernames are exact
        ] {
            let r = login(&p, params);
            assert_eq!(
                err(&r),
                (500, CODE_LOGIN_FAILED.into(), MSG_LOGIN_FAILED.into())
            );
            p.lockouts().reset();
        }
        p.lockouts().reset();
        // 3. wrong address comes after the password check, before the question
        let r = login(&p, json!(["erin", "Erin-Pass-123", 999, "nonsense"]));
        assert_eq!(err(&r), (500, CODE_PUBLIC.into(), MSG_BAD_IP.into()));
        let r = login_from(&p, "198.51.100.20", json!(["erin", "Erin-Pass-123"]));
        assert_eq!(r.result, "ok");
        // wrong password for erin is still LoginFailed, not the IP error
        let r = login(&p, json!(["erin", "nope"]));
        assert_eq!(err(&r).1, CODE_LOGIN_FAILED);
        p.lockouts().reset();
        // 4. question: wrong answer, unanswered question, missing answer, missing question
        for params in [
            json!(["alice", "Correct-Horse1", 122, "Max"]),
            json!(["alice", "Correct-Horse1", 124, "Rex"]),
            json!(["alice", "Correct-Horse1", 122, null]),
            json!(["alice", "Correct-Horse1", null, null]),
            json!(["alice", "Correct-Horse1"]),
        ] {
            let r = login(&p, params.clone());
            assert_eq!(
                err(&r),
                (500, CODE_BAD_ANSWER.into(), MSG_BAD_ANSWER.into()),
                "{params}"
            );
            p.lockouts().reset();
        }
        // 5. state: bob (VPN_ONLY) with a right answer, cancel without one
        let r = login(&p, json!(["bob", "Bob-Pass-123", 122, "tom"]));
        assert_eq!(
            err(&r),
            (
                500,
                CODE_BAD_STATUS.into(),
                "User account is currently vpn_only.".into()
            )
        );
        // ...but a wrong answer comes first
        let r = login(&p, json!(["bob", "Bob-Pass-123", 122, "jerry"]));
        assert_eq!(err(&r).1, CODE_BAD_ANSWER);
        let r = login(&p, json!(["cancel", "Cancel-Pass-1"]));
        assert_eq!(err(&r).2, "User account is currently cancel_pending.");
        // status before binding
        let r = login(&p, json!(["vera", "Vera-Pass-123"]));
        assert_eq!(err(&r).1, CODE_BAD_STATUS);
        // 6. active binding: no question needed even with secondary_login_required
        let r = login(&p, json!(["frank", "Frank-Pass-123", null, null]));
        assert_eq!(
            err(&r),
            (500, CODE_PHONE_REQUIRED.into(), MSG_PHONE_REQUIRED.into())
        );
        // the inactive VERISIGN binding is skipped; the TOTP one applies
        let r = login(&p, json!(["tina", "Tina-Pass-123"]));
        assert_eq!(
            err(&r),
            (500, CODE_TOTP_REQUIRED.into(), MSG_TOTP_REQUIRED.into())
        );
        assert_eq!(binding_error("Verisign").code, CODE_CODE_REQUIRED);
        assert_eq!(binding_error("VERISIGN").message, MSG_CODE_REQUIRED);
        // a question id given to a bound user must still be right
        let r = login(&p, json!(["frank", "Frank-Pass-123", 122, "x"]));
        assert_eq!(err(&r).1, CODE_BAD_ANSWER);
    }

    #[test]
    fn lockout_counting_through_login() {
        let p = portal(); // max_failures = 3
        let ip: IpAddr = LOCAL.parse().unwrap();
        let now = Instant::now();
        login(&p, json!(["alice", "bad"]));
        login(&p, json!(["alice", "Correct-Horse1", 122, "bad"]));
        assert_eq!(p.lockouts().user_failures("alice", now), 2);
        // not counted: IP, status, binding
        login(&p, json!(["erin", "Erin-Pass-123"]));
        login(&p, json!(["bob", "Bob-Pass-123"]));
        login(&p, json!(["frank", "Frank-Pass-123"]));
        assert_eq!(p.lockouts().addr_failures(ip, now), 2);
        // success clears the username's failures, not the address's
        let r = login(&p, json!(["alice", "Correct-Horse1", 123, "beetle"]));
        assert_eq!(r.result, "ok");
        assert_eq!(p.lockouts().user_failures("alice", now), 0);
        assert_eq!(p.lockouts().addr_failures(ip, now), 2);
        // third failure from this address locks it: everybody gets AccountLocked from here
        login(&p, json!(["nobody", "x"]));
        let r = login(&p, json!(["alice", "Correct-Horse1", 122, "Rex"]));
        assert_eq!(err(&r), (500, CODE_LOCKED.into(), MSG_LOCKED.into()));
        // locked attempts are not counted; another address works
        let r = login_from(
            &p,
            "127.0.0.2",
            json!(["alice", "Correct-Horse1", 122, "Rex"]),
        );
        assert_eq!(r.result, "ok");
        // per-username: three failures from different addresses lock the username
        p.lockouts().reset();
        for a in ["127.0.0.3", "127.0.0.4", "127.0.0.5"] {
            let r = login_from(&p, a, json!(["alice", "bad"]));
            assert_eq!(r.result, CODE_LOGIN_FAILED);
        }
        let r = login_from(&p, "127.0.0.6", json!(["ALICE", "whatever"]));
        assert_eq!(r.result, CODE_LOCKED);
        let r = login_from(&p, "127.0.0.6", json!(["bob", "Bob-Pass-123"]));
        assert_eq!(r.result, CODE_BAD_STATUS);
        // the lock runs out
        let later = Instant::now() + Duration::from_secs(1801);
        assert!(!p
            .lockouts()
            .is_locked("alice", "127.0.0.6".parse().unwrap(), later));
    }

    #[test]
    fn bad_bodies() {
        let p = portal();
        let route = parse_route("/rest/v3.1/SoftLayer_User_Customer/getPortalLoginToken");
        for body in [
            &b"not json"[..],
            b"[1,2]",
            b"{\"parameters\": 5}",
            b"{\"parameters\": [5, \"x\"]}",
            b"{\"parameters\": [\"alice\", 5]}",
            b"{\"parameters\": [\"alice\", \"x\", \"122\", \"Rex\"]}",
            b"{\"parameters\": [\"alice\", \"x\", 1.5, \"Rex\"]}",
            b"{\"parameters\": [\"alice\", \"x\", 122, 7]}",
            b"{\"parameters\": [\"alice\", \"x\", 122, \"Rex\", 5]}",
            b"{\"parameters\": []}",
            b"\xff\xfe",
        ] {
            let call = Call {
                http_method: "POST",
                query: "",
                body,
                authorization: None,
                peer: LOCAL.parse().unwrap(),
            };
            let r = p.handle(route.as_ref(), &call, Instant::now());
            assert_eq!(
                (r.status, r.result.as_str()),
                (500, CODE_PUBLIC),
                "{body:?}"
            );
        }
        // nothing was counted
        assert_eq!(
            p.lockouts()
                .addr_failures(LOCAL.parse().unwrap(), Instant::now()),
            0
        );
    }

    fn get(p: &Portal, path: &str, query: &str, auth: Option<&str>) -> Reply {
        let call = Call {
            http_method: "GET",
            query,
            body: b"",
            authorization: auth,
            peer: LOCAL.parse().unwrap(),
        };
        p.handle(parse_route(path).as_ref(), &call, Instant::now())
    }

    const AUTH: &str = "Basic U0wxMDAwMDE6MDEyMzQ1Njc4OWFiY2RlZg=="; // SL100001:0123456789abcdef

    #[test]
    fn get_users_auth_filter_mask() {
        let p = portal();
        let path = "/rest/v3.1/SoftLayer_Account/getUsers.json";
        let r = get(&p, path, "", None);
        assert_eq!(r.status, 401);
        assert_eq!(
            r.body,
            json!({"error": "Access Denied. ", "code": "SoftLayer_Exception_Public"})
        );
        let r = get(&p, path, "", Some("Basic U0wxMDAwMDE6d3Jvbmc="));
        assert_eq!(r.status, 401);
        let r = get(&p, path, "", Some(AUTH));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.as_array().unwrap().len(), 7);
        let f = "objectFilter=%7B%22users%22%3A%7B%22username%22%3A%7B%22operation%22%3A%22alice%22%7D%7D%7D";
        let r = get(&p, path, f, Some(AUTH));
        let a = r.body.as_array().unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["id"], 5001);
        assert_eq!(a[0]["secondaryLoginRequiredFlag"], true);
        assert_eq!(a[0]["sslVpnAllowedFlag"], true);
        assert!(a[0].get("securityAnswers").is_none());
        assert!(a[0].get("userStatus").is_none());
        assert!(a[0].get("ipAddressRestriction").is_none());
        let mask = "objectMask=mask%5Bid%2Cusername%2CuserStatus%5BkeyName%2Cname%5D%2CipAddressRestriction%2CsecurityAnswers%5BquestionId%5D%2CexternalBindings%5Bid%2Cactive%2Cvendor%5BkeyName%5D%5D%5D";
        let q = format!("{}&{mask}", f.replace("alice", "frank"));
        let r = get(&p, path, &q, Some(AUTH));
        let u = &r.body[0];
        assert_eq!(
            u["userStatus"],
            json!({"id": 1001, "keyName": "ACTIVE", "name": "Active"})
        );
        assert_eq!(u["securityAnswers"], json!([]));
        assert_eq!(
            u["externalBindings"][0]["vendor"]["keyName"],
            "phone_factor"
        );
        assert_eq!(u["externalBindings"][0]["active"], true);
        // case-insensitive operator; "" restriction is sent as ""
        let q = "objectFilter=%7B%22users%22%3A%7B%22username%22%3A%7B%22operation%22%3A%22_%3D+CANCEL%22%7D%7D%7D";
        let r = get(&p, path, q, Some(AUTH));
        assert_eq!(r.body[0]["username"], "cancel");
        assert_eq!(r.body[0]["ipAddressRestriction"], "");
        // bad filter JSON
        let r = get(&p, path, "objectFilter=%7Bnope", Some(AUTH));
        assert_eq!((r.status, r.result.as_str()), (500, CODE_PUBLIC));
    }

    #[test]
    fn object_filter_parsing() {
        assert_eq!(parse_user_filter(None).unwrap(), UserFilter::default());
        assert_eq!(parse_user_filter(Some("")).unwrap(), UserFilter::default());
        assert_eq!(
            parse_user_filter(Some("{}")).unwrap(),
            UserFilter::default()
        );
        let f = parse_user_filter(Some(r#"{"users":{"username":{"operation":"alice"}}}"#)).unwrap();
        assert_eq!(f.username, Some(StrMatch::Exact("alice".into())));
        let f =
            parse_user_filter(Some(r#"{"users":{"username":{"operation":"_= Alice "}}}"#)).unwrap();
        assert_eq!(f.username, Some(StrMatch::CaseInsensitive("Alice".into())));
        assert!(f.username.as_ref().unwrap().matches("aLiCe"));
        assert!(!StrMatch::Exact("alice".into()).matches("Alice"));
        let f = parse_user_filter(Some(r#"{"users":{"id":{"operation":5001},"x":{}}}"#)).unwrap();
        assert_eq!(f.id, Some(5001));
        for bad in [
            "nope",
            "[]",
            r#"{"users":5}"#,
            r#"{"users":{"username":{}}}"#,
            r#"{"users":{"username":{"operation":5}}}"#,
            r#"{"users":{"id":{"operation":"x"}}}"#,
        ] {
            assert!(parse_user_filter(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_mask_parsing() {
        let m = mask_names("mask[id,username,userStatus[keyName,name],ipAddressRestriction,securityAnswers[questionId],externalBindings[id,active,vendor[keyName]]]");
        for n in [
            "id",
            "username",
            "userStatus",
            "securityAnswers",
            "externalBindings",
            "ipAddressRestriction",
        ] {
            assert!(m.contains(n), "{n}");
        }
        assert!(!m.contains("keyName") && !m.contains("vendor"));
        assert!(mask_names("mask.securityAnswers").contains("securityAnswers"));
        assert!(mask_names("mask(SoftLayer_User_Customer)[userStatus]").contains("userStatus"));
        let m = mask_names("id;userStatus.keyName;externalBindings.vendor");
        assert!(m.contains("userStatus") && m.contains("externalBindings"));
    }

    #[test]
    fn questions_and_not_found() {
        let p = portal();
        let r = get(
            &p,
            "/rest/v3.1/SoftLayer_User_Security_Question/getAllObjects.json",
            "",
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body[0],
            json!({"id": 122, "question": "First pet?", "displayOrder": 1, "viewable": 1})
        );
        for path in [
            "/rest/v3.1/SoftLayer_Nope/getAllObjects",
            "/rest/v3.1/SoftLayer_Account/getNope",
            "/elsewhere",
        ] {
            let r = get(&p, path, "", Some(AUTH));
            assert_eq!(
                (r.status, r.result.as_str()),
                (404, CODE_NOT_FOUND),
                "{path}"
            );
        }
    }

    #[test]
    fn summaries_hold_no_secrets() {
        let body = json!({"parameters": ["alice", "Correct-Horse1", 122, "Rex"]}).to_string();
        let call = Call {
            http_method: "POST",
            query: "",
            body: body.as_bytes(),
            authorization: None,
            peer: LOCAL.parse().unwrap(),
        };
        let route = parse_route("/rest/v3.1/SoftLayer_User_Customer/getPortalLoginToken");
        let s = summarize(route.as_ref(), &call);
        assert_eq!(
            s,
            CallSummary {
                username: Some("alice".into()),
                question_id: Some(json!(122)),
                password_sent: true
            }
        );
        let q = "objectFilter=%7B%22users%22%3A%7B%22username%22%3A%7B%22operation%22%3A%22_%3D%20bob%22%7D%7D%7D";
        let call = Call {
            http_method: "GET",
            query: q,
            body: b"",
            authorization: Some(AUTH),
            peer: LOCAL.parse().unwrap(),
        };
        let route = parse_route("/rest/v3.1/SoftLayer_Account/getUsers");
        assert_eq!(
            summarize(route.as_ref(), &call).username.as_deref(),
            Some("bob")
        );
    }
}
