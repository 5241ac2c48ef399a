//! pam_portal.so: the `pam_sm_*` entry points of the `pam_portal` library (src/lib.rs, where
//! `pam_hooks!` defines them), linked into a cdylib of their own. See Cargo.toml for why this
//! crate exists; there is no code here.

pub use portal::PamPortal;
