//! pam_portal.so: the front of the module ([`portal::front::PamFront`], src/front.rs), linked
//! into a cdylib of its own. It decides what needs no portal itself (globally denied and
//! locked clients; after the password prompt, an empty or over-long password) and hands every
//! other login to libpam_portal_full.so (full/). There is no code here.

use portal::front::PamFront;

pam_bindings::pam_hooks!(PamFront);
