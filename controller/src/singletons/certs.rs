//! HNC's self-managed webhook PKI: a CA and a serving certificate, stored together in the Secret
//! `hnc-webhook-server-cert` (keys `ca.crt`, `ca.key`, `tls.crt`, `tls.key`, as upstream's cert rotator uses).
//!
//! The leader decides from the stored bundle whether to keep it, re-issue the serving certificate (expiring,
//! or its names changed) or replace the CA (expiring or unreadable). A replaced CA stays in `ca.crt` next to the
//! new one until it expires, so API servers holding the old `caBundle` keep trusting the webhook during rotation.
//!
//! Upstream HNC's bundle is kept as it is (docs/migration.md): its RSA keys in PKCS #1 (`RSA PRIVATE KEY`) are
//! read, and its serving certificate, which names only `<service>.<namespace>.svc`, covers every name the API
//! server dials. The other way round, what this controller issues passes upstream's certificate rotator's
//! checks, so upstream started on this controller's Secret keeps it too: the CA names itself (`hnc-ca`) in its
//! subject alternative names, and a serving certificate is re-issued well before upstream's rotator would find
//! it expiring (it looks 90 days ahead, and could not re-issue it under this controller's ECDSA CA key).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use hnc_api::keys::names;

/// The CA lives this long…
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// …and is replaced when less than this is left.
const CA_RENEW_BEFORE: Duration = Duration::from_secs(365 * 24 * 3600);
/// The serving certificate lives this long…
const SERVING_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// …and is re-issued when less than this is left: more than the 90 days upstream's certificate rotator looks
/// ahead, so an upstream manager started on this Secret (a rollback) never tries to re-issue it.
const SERVING_RENEW_BEFORE: Duration = Duration::from_secs(120 * 24 * 3600);

/// Secret data keys.
pub const CA_CERT_KEY: &str = "ca.crt";
/// Secret data keys.
pub const CA_KEY_KEY: &str = "ca.key";
/// Secret data keys.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// Secret data keys.
pub const TLS_KEY_KEY: &str = "tls.key";

/// The names the serving certificate must cover, and those a new one also names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServingNames {
    /// DNS names the API server dials (the webhook Service's `<service>.<namespace>.svc`, or a URL's host): a
    /// stored certificate missing one is re-issued.
    pub dns: Vec<String>,
    /// IP addresses the API server dials (URL mode on loopback).
    pub ips: Vec<IpAddr>,
    /// DNS names a new certificate also names, whose absence from a stored one is no reason to re-issue it
    /// (the Service's `.svc.cluster.local` name, the Service's names in URL mode).
    pub optional_dns: Vec<String>,
}

impl ServingNames {
    /// `<service>.<namespace>.svc`, as the API server dials a service webhook (upstream's certificate names
    /// only this), and its `.cluster.local` form.
    pub fn for_service(service: &str, namespace: &str) -> Self {
        ServingNames {
            dns: vec![format!("{service}.{namespace}.svc")],
            ips: Vec::new(),
            optional_dns: vec![format!("{service}.{namespace}.svc.cluster.local")],
        }
    }
}

/// PEM-encoded CA and serving certificate with their keys.
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    /// Trusted CA certificates (the current CA first, possibly followed by the previous one during rotation).
    pub ca_cert_pem: String,
    /// The current CA's private key.
    pub ca_key_pem: String,
    /// Serving certificate.
    pub cert_pem: String,
    /// Serving key.
    pub key_pem: String,
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle").field("ca_cert_pem", &self.ca_cert_pem).finish_non_exhaustive()
    }
}

/// What the stored bundle needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Valid for long enough and covering the right names.
    Keep,
    /// Keep the CA, issue a new serving certificate.
    Serving(String),
    /// Issue a new CA and serving certificate.
    All(String),
}

/// Errors creating or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored certificate could not be parsed.
    #[error("cannot parse certificate: {0}")]
    Parse(String),
}

/// Issues a new CA and a serving certificate for `names`.
pub fn issue(names: &ServingNames, now: OffsetDateTime) -> Result<CertBundle, CertError> {
    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params(now)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let (cert_pem, key_pem) = serving(names, &issuer, now)?;
    Ok(CertBundle { ca_cert_pem: ca_cert.pem(), ca_key_pem: issuer_key_pem(&issuer), cert_pem, key_pem })
}

/// Re-issues the serving certificate under the bundle's current CA.
pub fn reissue_serving(
    bundle: &CertBundle,
    names: &ServingNames,
    now: OffsetDateTime,
) -> Result<CertBundle, CertError> {
    let ca_key = key_pair(&bundle.ca_key_pem)?;
    let current_ca =
        first_pem_block(&bundle.ca_cert_pem).ok_or_else(|| CertError::Parse("ca.crt is empty".into()))?;
    let issuer = Issuer::from_ca_cert_pem(&current_ca, ca_key)?;
    let (cert_pem, key_pem) = serving(names, &issuer, now)?;
    Ok(CertBundle { cert_pem, key_pem, ..bundle.clone() })
}

/// Replaces the CA, keeping the previous one trusted (appended to `ca.crt`) while it is still valid.
pub fn rotate_ca(
    previous: Option<&CertBundle>,
    names: &ServingNames,
    now: OffsetDateTime,
) -> Result<CertBundle, CertError> {
    let mut fresh = issue(names, now)?;
    if let Some(old) = previous.and_then(|b| first_pem_block(&b.ca_cert_pem))
        && matches!(validity(&old), Ok((_, not_after)) if not_after > now)
    {
        fresh.ca_cert_pem.push_str(&old);
    }
    Ok(fresh)
}

/// Decides what the stored bundle needs at `now`.
pub fn assess(bundle: Option<&CertBundle>, names: &ServingNames, now: OffsetDateTime) -> Renewal {
    let Some(bundle) = bundle else {
        return Renewal::All("no certificate stored yet".into());
    };
    let ca = match first_pem_block(&bundle.ca_cert_pem).map(|pem| validity(&pem)) {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Renewal::All(format!("stored CA is unreadable: {e}")),
        None => return Renewal::All("stored CA is missing".into()),
    };
    if key_pair(&bundle.ca_key_pem).is_err() {
        return Renewal::All("stored CA key is unreadable".into());
    }
    if ca.1 - now < CA_RENEW_BEFORE {
        return Renewal::All(format!("CA expires at {}", ca.1));
    }
    let serving = match parse_serving(&bundle.cert_pem) {
        Ok(s) => s,
        Err(e) => return Renewal::Serving(format!("serving certificate is unreadable: {e}")),
    };
    if key_pair(&bundle.key_pem).is_err() {
        return Renewal::Serving("serving key is unreadable".into());
    }
    if serving.not_after - now < SERVING_RENEW_BEFORE {
        return Renewal::Serving(format!("serving certificate expires at {}", serving.not_after));
    }
    let missing: Vec<String> = names
        .dns
        .iter()
        .filter(|d| !serving.dns.contains(d))
        .cloned()
        .chain(names.ips.iter().filter(|ip| !serving.ips.contains(ip)).map(IpAddr::to_string))
        .collect();
    if !missing.is_empty() {
        return Renewal::Serving(format!("serving certificate does not cover {}", missing.join(", ")));
    }
    if !signed_by(&bundle.cert_pem, &bundle.ca_cert_pem) {
        return Renewal::Serving("serving certificate was not issued by the current CA".into());
    }
    Renewal::Keep
}

/// The bundle as Secret `data` (raw bytes; the API layer base64-encodes).
pub fn to_secret_data(bundle: &CertBundle) -> BTreeMap<String, Vec<u8>> {
    [
        (CA_CERT_KEY, &bundle.ca_cert_pem),
        (CA_KEY_KEY, &bundle.ca_key_pem),
        (TLS_CERT_KEY, &bundle.cert_pem),
        (TLS_KEY_KEY, &bundle.key_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
    .collect()
}

/// Reads a bundle from Secret `data`; `None` when a key is missing or not UTF-8.
pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Option<CertBundle> {
    let get = |k: &str| data.get(k).and_then(|v| String::from_utf8(v.clone()).ok()).filter(|s| !s.is_empty());
    Some(CertBundle {
        ca_cert_pem: get(CA_CERT_KEY)?,
        ca_key_pem: get(CA_KEY_KEY)?,
        cert_pem: get(TLS_CERT_KEY)?,
        key_pem: get(TLS_KEY_KEY)?,
    })
}

fn ca_params(now: OffsetDateTime) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names::CA_NAME);
    dn.push(DnType::OrganizationName, names::CA_ORGANIZATION);
    params.distinguished_name = dn;
    // Upstream's rotator checks its CA as a certificate for the name `hnc-ca`, which Go verifies against the
    // subject alternative names only: without it, upstream started on this Secret would replace the CA.
    params.subject_alt_names = vec![SanType::DnsName(names::CA_NAME.try_into()?)];
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + CA_LIFETIME;
    Ok(params)
}

fn serving(
    names: &ServingNames,
    issuer: &Issuer<'_, KeyPair>,
    now: OffsetDateTime,
) -> Result<(String, String), CertError> {
    let sans: Vec<String> = names
        .dns
        .iter()
        .chain(names.optional_dns.iter().filter(|d| !names.dns.contains(d)))
        .cloned()
        .chain(names.ips.iter().map(IpAddr::to_string))
        .collect();
    let mut params = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    let common_name = names.dns.first().or(names.optional_dns.first());
    dn.push(DnType::CommonName, common_name.cloned().unwrap_or_else(|| "hnc-webhook".into()));
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + SERVING_LIFETIME;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issuer_key_pem(issuer: &Issuer<'_, KeyPair>) -> String {
    issuer.key().serialize_pem()
}

/// A private key from PEM: PKCS #8 (`PRIVATE KEY`, what this controller writes) or PKCS #1 RSA
/// (`RSA PRIVATE KEY`, what upstream's certificate rotator writes), which is re-wrapped as PKCS #8 because
/// rcgen reads only that with ring.
fn key_pair(pem: &str) -> Result<KeyPair, CertError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| CertError::Parse(format!("private key: {e}")))?;
    match key {
        PrivateKeyDer::Pkcs1(rsa) => {
            let pkcs8 = pkcs8_of_rsa(rsa.secret_pkcs1_der())?;
            Ok(KeyPair::try_from(&PrivatePkcs8KeyDer::from(pkcs8))?)
        }
        other => Ok(KeyPair::try_from(&other)?),
    }
}

/// `PrivateKeyInfo` (RFC 5208) holding an RSA private key (RFC 8017, `RSAPrivateKey`): version 0, the
/// `rsaEncryption` algorithm with NULL parameters, the key as an OCTET STRING.
fn pkcs8_of_rsa(pkcs1: &[u8]) -> Result<Vec<u8>, CertError> {
    const VERSION_0: [u8; 3] = [0x02, 0x01, 0x00];
    const RSA_ENCRYPTION: [u8; 15] =
        [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let mut octets = vec![0x04];
    octets.extend(der_length(pkcs1.len())?);
    octets.extend_from_slice(pkcs1);
    let body_len = VERSION_0.len() + RSA_ENCRYPTION.len() + octets.len();
    let mut out = vec![0x30];
    out.extend(der_length(body_len)?);
    out.extend_from_slice(&VERSION_0);
    out.extend_from_slice(&RSA_ENCRYPTION);
    out.extend(octets);
    Ok(out)
}

/// A DER length: short form below 128, else the big-endian bytes after `0x80 | count`.
fn der_length(len: usize) -> Result<Vec<u8>, CertError> {
    if let Ok(short) = u8::try_from(len)
        && short < 0x80
    {
        return Ok(vec![short]);
    }
    let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    let count = u8::try_from(bytes.len()).map_err(|_| CertError::Parse("key too long".into()))?;
    Ok(std::iter::once(0x80 | count).chain(bytes).collect())
}

/// The first `-----BEGIN CERTIFICATE-----` block of a PEM bundle.
fn first_pem_block(pem: &str) -> Option<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find("-----BEGIN CERTIFICATE-----")?;
    let end = pem[start..].find(END)? + start + END.len();
    Some(format!("{}\n", &pem[start..end]))
}

/// (not_before, not_after) of one PEM certificate.
fn validity(pem: &str) -> Result<(OffsetDateTime, OffsetDateTime), CertError> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| CertError::Parse(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| CertError::Parse(e.to_string()))?;
    Ok((cert.validity().not_before.to_datetime(), cert.validity().not_after.to_datetime()))
}

/// True when the certificate in `cert_pem` carries a valid signature by the first CA in `ca_pem`.
fn signed_by(cert_pem: &str, ca_pem: &str) -> bool {
    let Some(ca_block) = first_pem_block(ca_pem) else { return false };
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()),
        x509_parser::pem::parse_x509_pem(ca_block.as_bytes()),
    ) else {
        return false;
    };
    let (Ok(cert), Ok(ca)) = (cert.parse_x509(), ca.parse_x509()) else { return false };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

struct Serving {
    not_after: OffsetDateTime,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

fn parse_serving(pem: &str) -> Result<Serving, CertError> {
    use x509_parser::extensions::GeneralName;
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| CertError::Parse(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| CertError::Parse(e.to_string()))?;
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default())),
                    16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default())),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(Serving { not_after: cert.validity().not_after.to_datetime(), dns, ips })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ServingNames {
        ServingNames::for_service(names::WEBHOOK_SERVICE, "hnc-system")
    }

    #[test]
    fn fresh_bundle_is_kept_and_round_trips_through_a_secret() {
        let now = OffsetDateTime::now_utc();
        let bundle = issue(&names(), now).unwrap();
        assert_eq!(assess(Some(&bundle), &names(), now), Renewal::Keep);
        assert_eq!(from_secret_data(&to_secret_data(&bundle)), Some(bundle));
    }

    #[test]
    fn missing_or_garbage_means_a_new_ca() {
        let now = OffsetDateTime::now_utc();
        assert!(matches!(assess(None, &names(), now), Renewal::All(_)));
        let mut bundle = issue(&names(), now).unwrap();
        bundle.ca_cert_pem = "junk".into();
        assert!(matches!(assess(Some(&bundle), &names(), now), Renewal::All(_)));
    }

    #[test]
    fn expiring_serving_certificate_is_reissued_under_the_same_ca() {
        let issued = OffsetDateTime::now_utc();
        let bundle = issue(&names(), issued).unwrap();
        let later = issued + time::Duration::days(340);
        assert!(matches!(assess(Some(&bundle), &names(), later), Renewal::Serving(_)));
        let renewed = reissue_serving(&bundle, &names(), later).unwrap();
        assert_eq!(renewed.ca_cert_pem, bundle.ca_cert_pem);
        assert_ne!(renewed.cert_pem, bundle.cert_pem);
        assert_eq!(assess(Some(&renewed), &names(), later), Renewal::Keep);
    }

    #[test]
    fn changed_names_need_a_new_serving_certificate() {
        let now = OffsetDateTime::now_utc();
        let bundle = issue(&names(), now).unwrap();
        let url_mode = ServingNames {
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            optional_dns: Vec::new(),
        };
        match assess(Some(&bundle), &url_mode, now) {
            Renewal::Serving(why) => assert!(why.contains("127.0.0.1"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expiring_ca_is_rotated_and_the_old_one_stays_trusted() {
        let issued = OffsetDateTime::now_utc();
        let bundle = issue(&names(), issued).unwrap();
        let later = issued + time::Duration::days(9 * 365 + 30);
        assert!(matches!(assess(Some(&bundle), &names(), later), Renewal::All(_)));
        let rotated = rotate_ca(Some(&bundle), &names(), later).unwrap();
        assert_eq!(rotated.ca_cert_pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(rotated.ca_cert_pem.ends_with(&first_pem_block(&bundle.ca_cert_pem).unwrap()));
        assert_eq!(assess(Some(&rotated), &names(), later), Renewal::Keep);
    }

    /// What upstream HNC's certificate rotator stores (cert-controller, pkg/rotator): RSA 2048 keys in PKCS #1,
    /// a ten-year CA `hnc-ca` (organization `hnc`, naming itself `hnc-ca`) and a ten-year serving certificate
    /// for `<service>.<namespace>.svc` alone. The keys are fixed test keys.
    fn upstream_bundle(now: OffsetDateTime) -> CertBundle {
        let ca_key_pem = include_str!("testdata/upstream-ca.key").to_owned();
        let key_pem = include_str!("testdata/upstream-serving.key").to_owned();
        let ten_years = time::Duration::days(3650);
        let mut ca = CertificateParams::new(vec![names::CA_NAME.to_owned()]).unwrap();
        ca.distinguished_name.push(DnType::CommonName, names::CA_NAME);
        ca.distinguished_name.push(DnType::OrganizationName, names::CA_ORGANIZATION);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
        (ca.not_before, ca.not_after) = (now - time::Duration::hours(1), now + ten_years);
        let ca_key = key_pair(&ca_key_pem).unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let dns = format!("{}.hnc-system.svc", names::WEBHOOK_SERVICE);
        let mut serving = CertificateParams::new(vec![dns.clone()]).unwrap();
        serving.distinguished_name.push(DnType::CommonName, dns);
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        (serving.not_before, serving.not_after) = (now - time::Duration::hours(1), now + ten_years);
        let cert = serving.signed_by(&key_pair(&key_pem).unwrap(), &Issuer::new(ca, ca_key)).unwrap();
        CertBundle { ca_cert_pem: ca_cert.pem(), ca_key_pem, cert_pem: cert.pem(), key_pem }
    }

    #[test]
    fn upstreams_bundle_is_kept_and_its_ca_can_issue() {
        let now = OffsetDateTime::now_utc();
        let upstream = upstream_bundle(now);
        assert!(upstream.ca_key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert_eq!(assess(Some(&upstream), &names(), now), Renewal::Keep);
        // Serving elsewhere too (a URL's host): a new serving certificate under upstream's CA, not a new CA.
        let wider = ServingNames { dns: vec!["localhost".into()], ..names() };
        assert!(matches!(assess(Some(&upstream), &wider, now), Renewal::Serving(_)));
        let renewed = reissue_serving(&upstream, &wider, now).unwrap();
        assert_eq!(
            (&renewed.ca_cert_pem, &renewed.ca_key_pem),
            (&upstream.ca_cert_pem, &upstream.ca_key_pem)
        );
        assert!(signed_by(&renewed.cert_pem, &upstream.ca_cert_pem));
        assert_eq!(assess(Some(&renewed), &wider, now), Renewal::Keep);
    }

    #[test]
    fn a_new_ca_passes_upstreams_checks() {
        // Upstream's rotator verifies its CA as a certificate for the name `hnc-ca` and the serving certificate
        // 90 days ahead; failing either, it replaces what this controller issued.
        let now = OffsetDateTime::now_utc();
        let bundle = issue(&names(), now).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(bundle.ca_cert_pem.as_bytes()).unwrap();
        let ca = pem.parse_x509().unwrap();
        let san = ca.subject_alternative_name().unwrap().unwrap();
        assert!(
            san.value.general_names.iter().any(
                |n| matches!(n, x509_parser::extensions::GeneralName::DNSName(d) if *d == names::CA_NAME)
            )
        );
        let serving = parse_serving(&bundle.cert_pem).unwrap();
        assert!(serving.dns.contains(&format!("{}.hnc-system.svc", names::WEBHOOK_SERVICE)));
        // The day before this controller re-issues it, the serving certificate still has over 90 days left.
        let last_kept = serving.not_after - SERVING_RENEW_BEFORE - time::Duration::days(1);
        assert_eq!(assess(Some(&bundle), &names(), last_kept), Renewal::Keep);
        assert!(serving.not_after - last_kept > time::Duration::days(90));
    }

    #[test]
    fn certificate_signed_by_another_ca_is_replaced() {
        let now = OffsetDateTime::now_utc();
        let a = issue(&names(), now).unwrap();
        let b = issue(&names(), now).unwrap();
        let mixed = CertBundle { cert_pem: b.cert_pem, key_pem: b.key_pem, ..a };
        assert!(matches!(assess(Some(&mixed), &names(), now), Renewal::Serving(_)));
    }
}
