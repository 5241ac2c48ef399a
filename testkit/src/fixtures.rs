//! The portal-sim fixture the integration tests share, and the facts in it.
//!
//! Every user with security answers but hank has answered exactly one question (101), so their
//! question prompt is deterministic whatever `question_choice` says.

/// Service account in the fixture.
pub const API_USER: &str = "SL100001";
pub const API_KEY: &str = "sim-api-key-7f3c9a1e5b2d";

/// Question 101, the one every user with answers has answered.
pub const PET_QUESTION: &str = "What was the name of your first pet?";

/// alice: ACTIVE, password + security question 101.
pub const ALICE_PW: &str = "Alice-Pass1!";
pub const ALICE_ANSWER: &str = "Fluffy";
/// bob: like alice (a second user of the same shape).
pub const BOB_PW: &str = "Bob-Pass22!";
pub const BOB_ANSWER: &str = "Rex";
/// carol: ACTIVE, no second factor enrolled.
pub const CAROL_PW: &str = "Carol-Pass3!";
/// dave: DISABLED, question 101.
pub const DAVE_PW: &str = "Dave-Pass44!";
pub const DAVE_ANSWER: &str = "Spot";
/// erin: VPN_ONLY, question 101.
pub const ERIN_PW: &str = "Erin-Pass55!";
pub const ERIN_ANSWER: &str = "Tiger";
/// frank: ACTIVE, question 101, portal `ipAddressRestriction = "10.0.0.0/8"` (excludes the
/// sim's caller 127.0.0.1 and the test client addresses outside 10/8).
pub const FRANK_PW: &str = "Frank-Pass6!";
pub const FRANK_ANSWER: &str = "Max";
/// pat: ACTIVE, an active PHONE_FACTOR binding (no security answers): a voice call to
/// +1 512 555 0100 (PRIMARY) that the simulated person approves after 100 ms.
pub const PAT_PW: &str = "Pat-Pass777!";
/// The phone numbers of the phone users (the info text may show only the last four digits).
pub const PAT_PHONE: &str = "5125550100";
pub const SAM_PHONE: &str = "5125550177";
/// penny: like pat, but denies; paul: never answers; sam: SMS_TEXT/OTP to +1 512 555 0177,
/// approves; appy: PHONE_APP/STANDARD, approves; bea: binding BLOCKED. All share one password.
pub const PHONE_PW: &str = "Phone-Pass7!";
/// tina: an active TOTP binding, current code [`CODE`]; vic: an active VERISIGN binding that is
/// out of sync (the right code alone asks for [`SECOND_CODE`] as well). Password [`PHONE_PW`].
pub const CODE: &str = "123456";
pub const SECOND_CODE: &str = "654321";
/// gina: ACTIVE, question 101, `sslVpnAllowedFlag` false.
pub const GINA_PW: &str = "Gina-Pass88!";
pub const GINA_ANSWER: &str = "Bella";

/// hank: ACTIVE, two questions answered (102 and 103), both with the same answer so a test can
/// answer whichever is asked.
pub const HANK_PW: &str = "Hank-Pass99!";
pub const HANK_ANSWER: &str = "Austin";
/// Question 102 (display order 3) and 103 (display order 2): `question_choice = "first"`
/// asks hank 103, though 102 has the lower id and comes first in his answers.
pub const CITY_QUESTION: &str = "In what city were you born?";
pub const COLOR_QUESTION: &str = "What is your favorite color?";

/// The client address the tests use when nothing else matters (TEST-NET-2).
pub const CLIENT: &str = "198.51.100.7";

/// The standard fixture, with the portal's own lockout at `portal_max_failures`.
pub fn standard_with_portal_lockout(portal_max_failures: u32) -> String {
    format!(
        r#"
[account]
api_user = "{API_USER}"
api_key = "{API_KEY}"

[lockout]
max_failures = {portal_max_failures}
window_s = 1800
lock_s = 1800

[[questions]]
id = 101
question = "{PET_QUESTION}"
display_order = 1

[[questions]]
id = 102
question = "{CITY_QUESTION}"
display_order = 3

[[questions]]
id = 103
question = "{COLOR_QUESTION}"
display_order = 2

[[users]]
id = 2001
username = "alice"
password = "{ALICE_PW}"
secondary_login_required = true
answers = [{{ question_id = 101, answer = "{ALICE_ANSWER}" }}]

[[users]]
id = 2002
username = "bob"
password = "{BOB_PW}"
secondary_login_required = true
answers = [{{ question_id = 101, answer = "{BOB_ANSWER}" }}]

[[users]]
id = 2003
username = "carol"
password = "{CAROL_PW}"

[[users]]
id = 2004
username = "dave"
password = "{DAVE_PW}"
status = "DISABLED"
secondary_login_required = true
answers = [{{ question_id = 101, answer = "{DAVE_ANSWER}" }}]

[[users]]
id = 2005
username = "erin"
password = "{ERIN_PW}"
status = "VPN_ONLY"
secondary_login_required = true
answers = [{{ question_id = 101, answer = "{ERIN_ANSWER}" }}]

[[users]]
id = 2006
username = "frank"
password = "{FRANK_PW}"
ip_restriction = "10.0.0.0/8"
secondary_login_required = true
answers = [{{ question_id = 101, answer = "{FRANK_ANSWER}" }}]

[[users]]
id = 2007
username = "pat"
password = "{PAT_PW}"
bindings = [{{ id = 7001, vendor = "PHONE_FACTOR", delay_ms = 100 }}]

[[users]]
id = 2008
username = "gina"
password = "{GINA_PW}"
ssl_vpn_allowed = false
secondary_login_required = true
answers = [{{ question_id = 101, answer = "{GINA_ANSWER}" }}]

[[users]]
id = 2009
username = "hank"
password = "{HANK_PW}"
secondary_login_required = true
answers = [
    {{ question_id = 102, answer = "{HANK_ANSWER}" }},
    {{ question_id = 103, answer = "{HANK_ANSWER}" }},
]

[[users]]
id = 2010
username = "penny"
password = "{PHONE_PW}"
bindings = [{{ id = 7002, vendor = "PHONE_FACTOR", behaviour = "deny", delay_ms = 100 }}]

[[users]]
id = 2011
username = "paul"
password = "{PHONE_PW}"
bindings = [{{ id = 7003, vendor = "PHONE_FACTOR", behaviour = "ignore" }}]

[[users]]
id = 2012
username = "sam"
password = "{PHONE_PW}"
bindings = [{{ id = 7004, vendor = "PHONE_FACTOR", mode = "SMS_TEXT", pin_mode = "OTP", delay_ms = 100, phones = [{{ country_code = 1, phone = "{SAM_PHONE}", type = "PRIMARY" }}] }}]

[[users]]
id = 2013
username = "appy"
password = "{PHONE_PW}"
bindings = [{{ id = 7005, vendor = "PHONE_FACTOR", mode = "PHONE_APP", pin_mode = "STANDARD", delay_ms = 100 }}]

[[users]]
id = 2014
username = "bea"
password = "{PHONE_PW}"
bindings = [{{ id = 7006, vendor = "PHONE_FACTOR", status = "BLOCKED" }}]

[[users]]
id = 2015
username = "tina"
password = "{PHONE_PW}"
bindings = [{{ id = 7007, vendor = "TOTP", code = "{CODE}" }}]

[[users]]
id = 2016
username = "vic"
password = "{PHONE_PW}"
bindings = [{{ id = 7008, vendor = "VERISIGN", code = "{CODE}", second_code = "{SECOND_CODE}", out_of_sync = true }}]
"#
    )
}

/// The standard fixture. The portal's own lockout is set out of the way (1000 failures), so
/// only the module's lockouts show unless a test asks for the portal's.
pub fn standard() -> String {
    standard_with_portal_lockout(1000)
}

/// The client-facing messages of SPEC §5.
pub mod msg {
    pub const INVALID: &str = "Invalid login credentials provided.";
    pub const IP_DENIED: &str = "Unauthorized IP Address!";
    pub const UNAVAILABLE: &str = "The login service is unavailable; try again later.";
    /// `Account has been locked for N minutes.`
    pub fn locked(minutes: u64) -> String {
        format!("Account has been locked for {minutes} minutes.")
    }
}

/// The default prompts of SPEC §3.
pub mod prompt {
    pub const PASSWORD: &str = "Password: ";
    /// `{question} ` for question 101.
    pub fn pet() -> String {
        format!("{} ", super::PET_QUESTION)
    }
    /// The usual two prompts of a question login: the password, then question 101, both
    /// echo off (`Outcome::prompt_list`).
    pub fn password_and_pet() -> Vec<(crate::Style, String)> {
        vec![
            (crate::Style::EchoOff, PASSWORD.to_string()),
            (crate::Style::EchoOff, pet()),
        ]
    }
}
