//! Certificates made at startup (rcgen) and the rustls server configuration.
//!
//! A fresh CA is always made; its certificate is what `ca.pem` holds. The server's leaf
//! depends on the `--cert-mode`:
//! - `good`: signed by the CA, for `127.0.0.1`, `::1` and `localhost`;
//! - `wrong-host`: signed by the CA, only for the DNS name `wrong.example.net`;
//! - `self-signed`: for the right names but self-signed (not by the CA in `ca.pem`);
//! - `expired`: signed by the CA, right names, valid 2020-01-01 to 2021-01-01.

use std::sync::Arc;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertMode {
    Good,
    WrongHost,
    SelfSigned,
    Expired,
}

impl CertMode {
    pub fn parse(s: &str) -> Option<CertMode> {
        match s {
            "good" => Some(CertMode::Good),
            "wrong-host" => Some(CertMode::WrongHost),
            "self-signed" => Some(CertMode::SelfSigned),
            "expired" => Some(CertMode::Expired),
            _ => None,
        }
    }
}

pub struct Material {
    pub ca_pem: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn e(err: rcgen::Error) -> String {
    format!("certificate generation failed: {err}")
}

pub fn generate(mode: CertMode) -> Result<Material, String> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "portal-sim test CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "portal-sim");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;

    let names: Vec<String> = match mode {
        CertMode::WrongHost => vec!["wrong.example.net".into()],
        _ => vec!["127.0.0.1".into(), "::1".into(), "localhost".into()],
    };
    let mut leaf = CertificateParams::new(names).map_err(e)?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        if mode == CertMode::WrongHost {
            "wrong.example.net"
        } else {
            "localhost"
        },
    );
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if mode == CertMode::Expired {
        leaf.not_before = date_time_ymd(2020, 1, 1);
        leaf.not_after = date_time_ymd(2021, 1, 1);
    }
    let leaf_key = KeyPair::generate().map_err(e)?;
    let leaf_cert = if mode == CertMode::SelfSigned {
        leaf.self_signed(&leaf_key).map_err(e)?
    } else {
        let issuer = Issuer::from_params(&ca, &ca_key);
        leaf.signed_by(&leaf_key, &issuer).map_err(e)?
    };
    Ok(Material {
        ca_pem: ca_cert.pem(),
        chain: vec![leaf_cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    })
}

pub fn server_config(m: &Material) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS setup failed: {err}"))?
        .with_no_client_auth()
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .map_err(|err| format!("TLS setup failed: {err}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
