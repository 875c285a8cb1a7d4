//! When a certificate stops being valid, read from its DER, so that
//! `quire status` can warn before certificates expire.
//!
//! The TLS stack checks validity at every handshake but does not say when
//! a certificate will lapse. The field sits at a fixed place in the
//! X.509 structure (RFC 5280 §4.1): `Certificate ::= SEQUENCE {
//! tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
//! signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... } }`,
//! so a short DER walk finds it without an X.509 parser.

use rustls::pki_types::CertificateDer;

/// One DER element: its tag and contents, and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Seconds since the Unix epoch at which `cert` stops being valid
/// (its `notAfter`), or `None` if it does not parse.
pub fn not_after_unix(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, certificate, _) = element(cert.as_ref())?;
    let (_, tbs, _) = element(certificate)?;
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after; // the explicit version
    }
    for _ in 0..3 {
        rest = element(rest)?.2; // serial, signature algorithm, issuer
    }
    let (_, validity, _) = element(rest)?;
    let (_, _, after_not_before) = element(validity)?;
    let (tag, time, _) = element(after_not_before)?;
    parse_time(tag, std::str::from_utf8(time).ok()?)
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`, tag 0x18), as seconds since the Unix epoch.
fn parse_time(tag: u8, text: &str) -> Option<i64> {
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if digits.len() == 12 => {
            let yy: i64 = digits[..2].parse().ok()?;
            // RFC 5280 §4.1.2.5.1: 50..99 are 19YY, 00..49 are 20YY.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        0x18 if digits.len() == 14 => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil` algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_to_unix_seconds() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(parse_time(0x17, "000101000000Z"), Some(946_684_800));
        assert_eq!(parse_time(0x18, "20261126120000Z"), Some(1_795_694_400));
        assert_eq!(parse_time(0x17, "991231235959Z"), Some(946_684_799));
        assert_eq!(parse_time(0x17, "9912312359Z"), None);
        assert_eq!(element(&[0x30, 0x85, 0, 0, 0, 0, 1]), None);
    }

    #[test]
    fn the_expiry_of_a_real_certificate_is_read() {
        // Years before 2050 are UTCTime, later ones GeneralizedTime.
        for (year, unix) in [(2030, 1_893_542_400), (2060, 2_840_227_200)] {
            let mut params = rcgen::CertificateParams::default();
            params.not_after = rcgen::date_time_ymd(year, 1, 2);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            assert_eq!(not_after_unix(cert.der()), Some(unix), "{year}");
        }
        assert_eq!(
            not_after_unix(&CertificateDer::from(vec![0x30, 0x00])),
            None
        );
    }
}
