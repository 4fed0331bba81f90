//! Admission webhooks: TLS material HNC manages for itself, and the HTTPS server every replica runs.

pub mod certs;
pub mod review;
pub mod tls;
