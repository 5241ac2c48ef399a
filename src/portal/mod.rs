//! Typed portal calls (PROTOCOL.md §2). One `HttpPortal` per login: its agent (in the HTTP
//! half, see transport.rs) is built on the first call and reused for the others, so a login
//! opens one connection and makes one TLS handshake. Nothing here lives in a static.

pub mod cache;
pub mod transport;
pub mod wire;

use crate::config::PortalSettings;
use crate::secret::Secret;
use serde_json::Value;
use std::time::{Duration, Instant};
use transport::Agent;
use wire::{as_list, flag, int, WireError};

/// Largest answer read from the portal; a longer one is an outage, not a login.
pub const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// The portal could not give a usable answer (down, slow, TLS, garbled, rate-limited, 401).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable(pub String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vendor {
    Phone,
    Totp,
    Verisign,
    Other(String),
}

impl Vendor {
    fn from_key(k: &str) -> Vendor {
        match k.to_ascii_uppercase().as_str() {
            "PHONE_FACTOR" => Vendor::Phone,
            "TOTP" => Vendor::Totp,
            "VERISIGN" => Vendor::Verisign,
            _ => Vendor::Other(k.to_string()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub id: u64,
    pub active: bool,
    pub vendor: Vendor,
}

/// A `SoftLayer_User_Customer` as the look-up returns it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PortalUser {
    pub id: u64,
    pub username: String,
    /// `userStatus.keyName`, upper case (`ACTIVE`, `VPN_ONLY`, …); empty if the portal sent none.
    pub status: String,
    pub ip_restriction: Option<String>,
    pub secondary_login_required: bool,
    pub ssl_vpn_allowed: bool,
    pub answered: Vec<u64>,
    pub bindings: Vec<Binding>,
}

impl PortalUser {
    pub fn active_binding(&self, v: &Vendor) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.active && &b.vendor == v)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub id: u64,
    pub text: String,
    pub display_order: i64,
}

/// What `getPortalLoginToken` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A session token: password (and answer) right, nothing owed.
    Token,
    /// Unknown user or wrong password.
    LoginFailed(String),
    /// Wrong security answer (or one required and not sent).
    BadAnswer(String),
    /// The portal's own lock.
    Locked(String),
    /// The portal refused the caller's (the concentrator's) address.
    IpRefused(String),
    /// Password right; the account is in `state` (lower case, e.g. `vpn_only`).
    UserStatus { state: String, message: String },
    /// Password right; a second factor of this kind is owed.
    FactorRequired(Vendor, String),
    /// VeriSign: the credential is out of sync; repeat with a second code.
    SecondCodeRequired(String),
}

/// One phone of a phone binding (`getPhoneData`); `raw` is sent back as is.
#[derive(Clone, Debug, PartialEq)]
pub struct Phone {
    pub raw: Value,
    pub country_code: String,
    pub number: String,
    pub backup: bool,
}

/// What `requestPhoneValidation` said.
#[derive(Debug, PartialEq)]
pub enum Requested {
    /// The call, text or app request is on its way; poll with this token.
    Token(Secret),
    /// "You have exceeded the maximum phone validation requests": a lock.
    Limit(String),
    /// This phone could not be used (try the backup one).
    Refused(String),
}

/// What `checkPhoneValidationResult` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    Approved,
    Awaiting,
    /// Denied, wrong PIN, or no answer.
    Failed(String),
    /// Unknown or expired token.
    InvalidToken(String),
}

/// The portal as the login logic sees it.
pub trait PortalApi {
    /// §2.1: the user named exactly `username`, if any.
    fn find_user(&mut self, username: &str) -> Result<Option<PortalUser>, Unavailable>;
    /// §2.2: the security-question texts.
    fn questions(&mut self) -> Result<Vec<Question>, Unavailable>;
    /// §2.3: checks the password, and the answer when a question is given.
    fn login(
        &mut self,
        username: &str,
        password: &Secret,
        answer: Option<(u64, &Secret)>,
    ) -> Result<Verdict, Unavailable>;
    /// From now on, calls must end by `deadline` (the phone wait has its own budget).
    fn set_deadline(&mut self, deadline: Instant);
    /// §2.4: `ACTIVE` or `BLOCKED`.
    fn binding_status(&mut self, binding: u64) -> Result<String, Unavailable>;
    /// §2.4: (mode, pin mode), defaults `VOICE_CALL`/`STANDARD`.
    fn authentication_mode(&mut self, binding: u64) -> Result<(String, String), Unavailable>;
    /// §2.4: the binding's phones, PRIMARY first.
    fn phones(&mut self, binding: u64) -> Result<Vec<Phone>, Unavailable>;
    /// §2.4: starts the call, text or app request.
    fn request_validation(&mut self, binding: u64, phone: &Phone)
        -> Result<Requested, Unavailable>;
    /// §2.4: has the person answered?
    fn check_validation(&mut self, binding: u64, token: &Secret) -> Result<Checked, Unavailable>;
    /// §2.5: password and a TOTP or VeriSign code in one call.
    fn external_auth(
        &mut self,
        vendor: &Vendor,
        username: &str,
        password: &Secret,
        code: &Secret,
        second: Option<&Secret>,
    ) -> Result<Verdict, Unavailable>;
}

const USER_MASK: &str = "mask[id,username,userStatusId,userStatus[keyName,name],ipAddressRestriction,secondaryLoginRequiredFlag,sslVpnAllowedFlag,securityAnswers[questionId],externalBindings[id,active,vendor[keyName]]]";

/// The HTTP implementation.
pub struct HttpPortal<'a> {
    settings: &'a PortalSettings,
    agent: Option<Agent>,
    /// All calls of one login share `connect_timeout + request_timeout`.
    deadline: Instant,
    /// Where the question texts are cached between logins (see cache.rs).
    question_cache: Option<std::path::PathBuf>,
}

impl<'a> HttpPortal<'a> {
    pub fn new(settings: &'a PortalSettings) -> Self {
        let budget = settings.connect_timeout + settings.request_timeout;
        HttpPortal {
            settings,
            agent: None,
            deadline: Instant::now() + budget,
            question_cache: None,
        }
    }

    /// Keeps the question texts in `path` for `cache::MAX_AGE` between logins, so that a
    /// question login makes two calls instead of three.
    pub fn with_question_cache(mut self, path: std::path::PathBuf) -> Self {
        self.question_cache = Some(path);
        self
    }

    fn agent(&mut self) -> Result<&Agent, Unavailable> {
        let agent = match self.agent.take() {
            Some(a) => a,
            None => Agent::new(
                self.settings.ca_file.as_deref(),
                self.settings.connect_timeout,
                concat!("pam_portal/", env!("CARGO_PKG_VERSION")),
            )
            .map_err(Unavailable)?,
        };
        Ok(self.agent.insert(agent))
    }

    fn url(&self, service_method: &str) -> String {
        format!("{}/{service_method}.json", self.settings.url)
    }

    fn basic_auth(&self) -> Result<String, Unavailable> {
        match (&self.settings.api_user, &self.settings.api_key) {
            (Some(u), Some(k)) => {
                let mut raw = format!("{u}:{}", k.expose()).into_bytes();
                let header = format!("Basic {}", wire::base64(&raw));
                crate::secret::wipe(&mut raw);
                Ok(header)
            }
            _ => Err(Unavailable(
                "no service account (api_user, api_key) configured".into(),
            )),
        }
    }

    /// One call; `post` = the JSON body. Returns the decoded answer.
    fn call(
        &mut self,
        url: &str,
        auth: Option<String>,
        post: Option<String>,
    ) -> Result<Result<Value, WireError>, Unavailable> {
        let per_call = self.settings.connect_timeout + self.settings.request_timeout;
        let left = self
            .deadline
            .saturating_duration_since(Instant::now())
            .min(per_call);
        if left < Duration::from_millis(1) {
            return Err(Unavailable(
                "the portal did not answer within the time allowed".into(),
            ));
        }
        let mut body = post.map(String::into_bytes);
        // Loading the HTTP half and the exchange both run on the helper thread's stack.
        let answer = transport::off_host_stack(|| {
            self.agent()?
                .exchange(
                    url,
                    auth.as_deref(),
                    body.as_deref(),
                    left,
                    MAX_ANSWER_BYTES,
                )
                .map_err(Unavailable)
        })
        .map_err(|e| Unavailable(format!("cannot start the portal call: {e}")));
        if let Some(b) = body.as_mut() {
            crate::secret::wipe(b); // the password and answer sent
        }
        let (status, bytes) = answer??;
        Ok(wire::decode(status, &bytes))
    }
}

fn unexpected(e: WireError) -> Unavailable {
    match e {
        WireError::Api { code, message } if code.ends_with("RateLimitExceeded") => {
            Unavailable(format!("rate-limited by the portal: {message}"))
        }
        WireError::Api { code, message } if message.starts_with("Access Denied") => {
            Unavailable(format!("the portal refused the service credentials ({code}): check api_user and the API key"))
        }
        WireError::Api { code, message } => Unavailable(format!("unexpected portal error {code}: {message}")),
        WireError::Garbled(why) => Unavailable(format!("garbled portal answer: {why}")),
    }
}

impl PortalApi for HttpPortal<'_> {
    fn find_user(&mut self, username: &str) -> Result<Option<PortalUser>, Unavailable> {
        let filter =
            serde_json::json!({"users": {"username": {"operation": username}}}).to_string();
        let url = format!(
            "{}?objectFilter={}&objectMask={}",
            self.url("SoftLayer_Account/getUsers"),
            wire::url_encode(&filter),
            wire::url_encode(USER_MASK)
        );
        let auth = self.basic_auth()?;
        let value = self.call(&url, Some(auth), None)?.map_err(unexpected)?;
        parse_users(value, username)
    }

    fn questions(&mut self) -> Result<Vec<Question>, Unavailable> {
        let now = std::time::SystemTime::now();
        if let Some(path) = &self.question_cache {
            if let Some(q) = cache::read(path, &self.settings.url, now) {
                return Ok(q);
            }
        }
        let url = self.url("SoftLayer_User_Security_Question/getAllObjects");
        let value = self.call(&url, None, None)?.map_err(unexpected)?;
        let questions = parse_questions(value)?;
        if let Some(path) = &self.question_cache {
            cache::write(path, &self.settings.url, now, &questions);
        }
        Ok(questions)
    }

    fn login(
        &mut self,
        username: &str,
        password: &Secret,
        answer: Option<(u64, &Secret)>,
    ) -> Result<Verdict, Unavailable> {
        let params = match answer {
            Some((id, a)) => vec![
                username.into(),
                password.expose().into(),
                id.into(),
                a.expose().into(),
            ],
            None => vec![
                username.into(),
                password.expose().into(),
                Value::Null,
                Value::Null,
            ],
        };
        let mut body = wire::body(params);
        let url = self.url("SoftLayer_User_Customer/getPortalLoginToken");
        let answer = self.call(&url, None, Some(std::mem::take(&mut body)));
        parse_verdict(answer?)
    }

    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    fn binding_status(&mut self, binding: u64) -> Result<String, Unavailable> {
        let v = self
            .phone_call(binding, "getBindingStatus", None)?
            .map_err(unexpected)?;
        let status = match &v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o
                .get("keyName")
                .or_else(|| o.get("status"))
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        };
        status
            .map(|s| s.trim().to_ascii_uppercase())
            .ok_or_else(|| garbled("getBindingStatus"))
    }

    fn authentication_mode(&mut self, binding: u64) -> Result<(String, String), Unavailable> {
        let v = self
            .phone_call(binding, "getAuthenticationMode", None)?
            .map_err(unexpected)?;
        let field = |k: &str, d: &str| match v.get(k) {
            None | Some(Value::Null) => Ok(d.to_string()),
            Some(Value::String(s)) => Ok(s.trim().to_ascii_uppercase()),
            Some(_) => Err(garbled("getAuthenticationMode")),
        };
        if !v.is_object() {
            return Err(garbled("getAuthenticationMode"));
        }
        Ok((field("mode", "VOICE_CALL")?, field("pinMode", "STANDARD")?))
    }

    fn phones(&mut self, binding: u64) -> Result<Vec<Phone>, Unavailable> {
        let v = self
            .phone_call(binding, "getPhoneData", None)?
            .map_err(unexpected)?;
        parse_phones(v)
    }

    fn request_validation(
        &mut self,
        binding: u64,
        phone: &Phone,
    ) -> Result<Requested, Unavailable> {
        let body = wire::body(vec![phone.raw.clone()]);
        match self.phone_call(binding, "requestPhoneValidation", Some(body))? {
            Ok(Value::String(t)) if !t.is_empty() => Ok(Requested::Token(Secret::new(t))),
            Ok(_) => Err(garbled("requestPhoneValidation answered without a token")),
            Err(WireError::Api { message, .. })
                if message.contains("exceeded the maximum phone validation requests") =>
            {
                Ok(Requested::Limit(message))
            }
            Err(WireError::Api { code, message })
                if !code.ends_with("RateLimitExceeded")
                    && !message.starts_with("Access Denied") =>
            {
                Ok(Requested::Refused(format!("{code}: {message}")))
            }
            Err(e) => Err(unexpected(e)),
        }
    }

    fn check_validation(&mut self, binding: u64, token: &Secret) -> Result<Checked, Unavailable> {
        let body = wire::body(vec![token.expose().into()]);
        const P: &str = "SoftLayer_Exception_User_Customer_External_Binding_";
        match self.phone_call(binding, "checkPhoneValidationResult", Some(body))? {
            Ok(Value::Bool(true)) => Ok(Checked::Approved),
            Ok(Value::Bool(false)) => Ok(Checked::Awaiting),
            Ok(_) => Err(garbled("checkPhoneValidationResult")),
            Err(WireError::Api { code, message }) => match code.strip_prefix(P) {
                Some("AwaitingResponse") => Ok(Checked::Awaiting),
                Some("PhoneValidationFailed") => Ok(Checked::Failed(message)),
                Some("InvalidAuthenticationToken") => Ok(Checked::InvalidToken(message)),
                _ => Err(unexpected(WireError::Api { code, message })),
            },
            Err(e) => Err(unexpected(e)),
        }
    }

    fn external_auth(
        &mut self,
        vendor: &Vendor,
        username: &str,
        password: &Secret,
        code: &Secret,
        second: Option<&Secret>,
    ) -> Result<Verdict, Unavailable> {
        let (complex, key) = match vendor {
            Vendor::Totp => (
                "SoftLayer_Container_User_Customer_External_Binding_Totp",
                "TOTP",
            ),
            Vendor::Verisign => (
                "SoftLayer_Container_User_Customer_External_Binding_Verisign",
                "VERISIGN",
            ),
            other => {
                return Err(Unavailable(format!(
                    "no code authentication for vendor {other:?}"
                )))
            }
        };
        let mut container = serde_json::json!({
            "complexType": complex,
            "username": username,
            "password": password.expose(),
            "securityCode": code.expose(),
            "vendor": key,
        });
        if let (Some(s), Some(o)) = (second, container.as_object_mut()) {
            o.insert("secondSecurityCode".into(), s.expose().into());
        }
        let mut body = wire::body(vec![container]);
        let url = self.url("SoftLayer_User_Customer/performExternalAuthentication");
        let answer = self.call(&url, None, Some(std::mem::take(&mut body)));
        parse_verdict(answer?)
    }
}

impl HttpPortal<'_> {
    fn phone_call(
        &mut self,
        binding: u64,
        method: &str,
        post: Option<String>,
    ) -> Result<Result<Value, WireError>, Unavailable> {
        let url = self.url(&format!(
            "SoftLayer_User_Customer_External_Binding_Phone/{binding}/{method}"
        ));
        let auth = self.basic_auth()?;
        self.call(&url, Some(auth), post)
    }
}

/// `getPhoneData`: phones with their digits; PRIMARY first.
pub fn parse_phones(v: Value) -> Result<Vec<Phone>, Unavailable> {
    let list = as_list(v).ok_or_else(|| garbled("getPhoneData did not return a list"))?;
    let mut phones = list
        .into_iter()
        .map(|raw| {
            let text = |k: &str| match raw.get(k) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                None | Some(Value::Null) => Some(String::new()),
                _ => None,
            };
            let number = text("phone")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| garbled("getPhoneData phone"))?;
            let country_code =
                text("countryCode").ok_or_else(|| garbled("getPhoneData countryCode"))?;
            let backup = raw
                .get("phoneType")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("BACKUP"));
            Ok(Phone {
                number,
                country_code,
                backup,
                raw,
            })
        })
        .collect::<Result<Vec<Phone>, Unavailable>>()?;
    phones.sort_by_key(|p| p.backup);
    Ok(phones)
}

fn garbled(what: &str) -> Unavailable {
    Unavailable(format!("garbled portal answer: {what}"))
}

/// The look-up answer: the one user whose name is exactly `username` (the filter is the
/// server's; the comparison here keeps a filter-operator trick in a name from matching others).
pub fn parse_users(value: Value, username: &str) -> Result<Option<PortalUser>, Unavailable> {
    let list = as_list(value).ok_or_else(|| garbled("getUsers did not return a list"))?;
    let mut found = None;
    for item in list {
        let u = parse_user(&item)?;
        if u.username == username {
            if found.is_some() {
                return Err(garbled("getUsers returned the same username twice"));
            }
            found = Some(u);
        }
    }
    Ok(found)
}

fn status_of_id(id: u64) -> &'static str {
    match id {
        1001 => "ACTIVE",
        1002 => "DISABLED",
        1003 => "INACTIVE",
        1004 => "PENDING",
        1005 => "SUSPENDED",
        1006 => "IAMID_INVALID",
        1021 => "CANCEL_PENDING",
        1022 => "VPN_ONLY",
        _ => "",
    }
}

fn parse_user(v: &Value) -> Result<PortalUser, Unavailable> {
    let o = v
        .as_object()
        .ok_or_else(|| garbled("a user is not an object"))?;
    let id = int(o.get("id")).ok_or_else(|| garbled("user id"))?;
    let username = o
        .get("username")
        .and_then(Value::as_str)
        .ok_or_else(|| garbled("username"))?
        .to_string();
    let status = match o.get("userStatus") {
        Some(Value::Object(s)) => s
            .get("keyName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_uppercase(),
        None | Some(Value::Null) => int(o.get("userStatusId"))
            .map(status_of_id)
            .unwrap_or("")
            .to_string(),
        _ => return Err(garbled("userStatus")),
    };
    let ip_restriction = match o.get("ipAddressRestriction") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        _ => return Err(garbled("ipAddressRestriction")),
    };
    let secondary_login_required = flag(o.get("secondaryLoginRequiredFlag"))
        .ok_or_else(|| garbled("secondaryLoginRequiredFlag"))?;
    let ssl_vpn_allowed =
        flag(o.get("sslVpnAllowedFlag")).ok_or_else(|| garbled("sslVpnAllowedFlag"))?;
    let answered = match o.get("securityAnswers") {
        None | Some(Value::Null) => Vec::new(),
        Some(a) => as_list(a.clone())
            .ok_or_else(|| garbled("securityAnswers"))?
            .iter()
            .map(|x| int(x.get("questionId")).ok_or_else(|| garbled("securityAnswers.questionId")))
            .collect::<Result<_, _>>()?,
    };
    let bindings = match o.get("externalBindings") {
        None | Some(Value::Null) => Vec::new(),
        Some(b) => as_list(b.clone())
            .ok_or_else(|| garbled("externalBindings"))?
            .iter()
            .map(|x| {
                let id = int(x.get("id")).ok_or_else(|| garbled("externalBindings.id"))?;
                let active =
                    flag(x.get("active")).ok_or_else(|| garbled("externalBindings.active"))?;
                let vendor = x
                    .get("vendor")
                    .and_then(|v| v.get("keyName"))
                    .and_then(Value::as_str)
                    .map(Vendor::from_key)
                    .unwrap_or(Vendor::Other(String::new()));
                Ok(Binding { id, active, vendor })
            })
            .collect::<Result<_, Unavailable>>()?,
    };
    Ok(PortalUser {
        id,
        username,
        status,
        ip_restriction,
        secondary_login_required,
        ssl_vpn_allowed,
        answered,
        bindings,
    })
}

pub fn parse_questions(value: Value) -> Result<Vec<Question>, Unavailable> {
    let list = as_list(value).ok_or_else(|| garbled("getAllObjects did not return a list"))?;
    list.iter()
        .map(|q| {
            let id = int(q.get("id")).ok_or_else(|| garbled("question id"))?;
            let text = q
                .get("question")
                .and_then(Value::as_str)
                .ok_or_else(|| garbled("question text"))?;
            let display_order = q.get("displayOrder").and_then(Value::as_i64).unwrap_or(0);
            Ok(Question {
                id,
                text: text.to_string(),
                display_order,
            })
        })
        .collect()
}

pub fn parse_verdict(answer: Result<Value, WireError>) -> Result<Verdict, Unavailable> {
    const P: &str = "SoftLayer_Exception_User_Customer_";
    match answer {
        Ok(v) => {
            let ok = v
                .get("hash")
                .and_then(Value::as_str)
                .is_some_and(|h| !h.is_empty())
                && v.get("userId").is_some_and(|u| u.is_u64());
            if ok {
                Ok(Verdict::Token)
            } else {
                Err(garbled("getPortalLoginToken answered without a token"))
            }
        }
        Err(WireError::Api { code, message }) => {
            let kind = code.strip_prefix(P).unwrap_or("");
            Ok(match kind {
                "LoginFailed" => Verdict::LoginFailed(message),
                "AccountLocked" => Verdict::Locked(message),
                "InvalidSecurityQuestionAnswer" => Verdict::BadAnswer(message),
                "InvalidUserStatus" => {
                    let state = message
                        .strip_prefix("User account is currently ")
                        .map(|s| s.trim_end_matches('.').trim().to_ascii_lowercase())
                        .unwrap_or_default();
                    Verdict::UserStatus { state, message }
                }
                "External_Binding_PhoneAuthenticationRequired" => {
                    Verdict::FactorRequired(Vendor::Phone, message)
                }
                "External_Binding_TotpAuthenticationRequired" => {
                    Verdict::FactorRequired(Vendor::Totp, message)
                }
                "External_Binding_SecurityCodeRequired" => {
                    Verdict::FactorRequired(Vendor::Verisign, message)
                }
                "External_Binding_AuthenticationFailed" => Verdict::LoginFailed(message),
                "External_Binding_Verisign_SecondSecurityCodeRequired" => {
                    Verdict::SecondCodeRequired(message)
                }
                _ if code == "SoftLayer_Exception_Public"
                    && message == "Unauthorized IP Address!" =>
                {
                    Verdict::IpRefused(message)
                }
                _ if code == "SoftLayer_Exception_Public"
                    && message == "Invalid login credentials provided." =>
                {
                    Verdict::LoginFailed(message)
                }
                _ => return Err(unexpected(WireError::Api { code, message })),
            })
        }
        Err(e) => Err(unexpected(e)),
    }
}

/// The minutes a portal lock message names ("Account has been locked for 30 minutes.").
pub fn lock_minutes(message: &str) -> Option<u64> {
    message
        .split_whitespace()
        .find_map(|w| w.parse::<u64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api(code: &str, msg: &str) -> Result<Value, WireError> {
        Err(WireError::Api {
            code: code.into(),
            message: msg.into(),
        })
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            parse_verdict(Ok(json!({"userId": 5, "hash": "abc"}))),
            Ok(Verdict::Token)
        );
        assert!(parse_verdict(Ok(json!({"userId": "x", "hash": 5}))).is_err());
        assert!(parse_verdict(Ok(json!(true))).is_err());
        assert_eq!(
            parse_verdict(api(
                "SoftLayer_Exception_User_Customer_LoginFailed",
                "Invalid login credentials provided."
            )),
            Ok(Verdict::LoginFailed(
                "Invalid login credentials provided.".into()
            ))
        );
        assert!(matches!(
            parse_verdict(api(
                "SoftLayer_Exception_Public",
                "Unauthorized IP Address!"
            )),
            Ok(Verdict::IpRefused(_))
        ));
        assert!(matches!(
            parse_verdict(api(
                "SoftLayer_Exception_Public",
                "Invalid login credentials provided."
            )),
            Ok(Verdict::LoginFailed(_))
        ));
        assert_eq!(
            parse_verdict(api(
                "SoftLayer_Exception_User_Customer_InvalidUserStatus",
                "User account is currently vpn_only."
            )),
            Ok(Verdict::UserStatus {
                state: "vpn_only".into(),
                message: "User account is currently vpn_only.".into()
            })
        );
        assert!(matches!(
            parse_verdict(api(
                "SoftLayer_Exception_User_Customer_External_Binding_PhoneAuthenticationRequired",
                "x"
            )),
            Ok(Verdict::FactorRequired(Vendor::Phone, _))
        ));
        assert!(parse_verdict(api(
            "SoftLayer_Exception_WebService_RateLimitExceeded",
            "Rate limit"
        ))
        .is_err());
        assert!(parse_verdict(api("SoftLayer_Exception_Public", "Internal Error")).is_err());
        assert!(parse_verdict(api("", "")).is_err());
    }

    #[test]
    fn code_verdicts() {
        assert_eq!(
            parse_verdict(api(
                "SoftLayer_Exception_User_Customer_External_Binding_Verisign_SecondSecurityCodeRequired",
                "Your credential has become out of synchronization.  Please supply a second security code."
            )),
            Ok(Verdict::SecondCodeRequired(
                "Your credential has become out of synchronization.  Please supply a second security code.".into()
            ))
        );
        assert!(matches!(
            parse_verdict(api(
                "SoftLayer_Exception_User_Customer_External_Binding_AuthenticationFailed",
                "x"
            )),
            Ok(Verdict::LoginFailed(_))
        ));
        assert_eq!(
            parse_phones(json!([
                {"countryCode": 1, "phone": "5125550199", "phoneType": "BACKUP"},
                {"countryCode": "1", "phone": 5125550100u64, "extension": "", "phoneType": "PRIMARY"}
            ]))
            .unwrap()
            .iter()
            .map(|p| (p.number.as_str(), p.backup))
            .collect::<Vec<_>>(),
            vec![("5125550100", false), ("5125550199", true)]
        );
        assert!(parse_phones(json!([{"countryCode": 1}])).is_err());
    }

    #[test]
    fn users_exact_match_and_tolerant_fields() {
        let v = json!([{
            "id": 5001, "username": "alice", "userStatus": {"keyName": "ACTIVE", "name": "Active"},
            "ipAddressRestriction": "", "secondaryLoginRequiredFlag": 1, "sslVpnAllowedFlag": true,
            "securityAnswers": [{"questionId": 122}, {"questionId": "123"}],
            "externalBindings": {"id": 9, "active": true, "vendor": {"keyName": "phone_factor"}}
        }]);
        let u = parse_users(v.clone(), "alice").unwrap().unwrap();
        assert_eq!(u.status, "ACTIVE");
        assert_eq!(u.answered, vec![122, 123]);
        assert!(u.secondary_login_required && u.ssl_vpn_allowed);
        assert_eq!(u.ip_restriction, None);
        assert!(u.active_binding(&Vendor::Phone).is_some());
        assert_eq!(parse_users(v, "Alice").unwrap(), None);
        assert_eq!(
            parse_users(
                json!({"id": 1, "username": "bob", "userStatusId": 1022}),
                "bob"
            )
            .unwrap()
            .unwrap()
            .status,
            "VPN_ONLY"
        );
        assert_eq!(parse_users(json!([]), "bob").unwrap(), None);
        assert!(parse_users(json!([{"id": "x", "username": 7}]), "bob").is_err());
        assert!(parse_users(json!("str"), "bob").is_err());
    }

    #[test]
    fn questions_and_lock_minutes() {
        let q = parse_questions(
            json!([{"id": 1, "question": "Pet?", "displayOrder": 2, "viewable": 1}]),
        )
        .unwrap();
        assert_eq!(q[0].text, "Pet?");
        assert!(parse_questions(json!("str")).is_err());
        assert_eq!(
            lock_minutes("Account has been locked for 30 minutes."),
            Some(30)
        );
    }
}
