//! portal-sim: an emulator of the portal API described in the shared PROTOCOL.md, for tests
//! and demos of the PAM module. It is an independent reading of that document and shares no
//! code with the module. See README.md beside Cargo.toml.

pub mod api;
pub mod cli;
pub mod external;
pub mod faults;
pub mod fixture;
pub mod http;
pub mod ipnet;
pub mod lockout;
pub mod log;
pub mod phone;
pub mod server;
pub mod tls;
pub mod util;
