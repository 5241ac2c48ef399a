//! pam_portal.so: the front of the module ([`portal::front::PamFront`], src/front.rs), linked
//! into a cdylib of its own. It refuses globally denied and locked clients itself and hands
//! every other login to libpam_portal_full.so (full/). There is no code here.

use portal::front::PamFront;

pam_bindings::pam_hooks!(PamFront);
