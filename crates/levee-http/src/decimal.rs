//! Decimal digits of an integer without `core::fmt`'s machinery: header values, content
//! lengths and log fields are written on every request, and formatting through `Display`
//! costs several times as much.

/// The decimal digits of `n`, written at the end of `digits`.
///
/// ```
/// assert_eq!(levee_http::decimal::digits(4096, &mut [0; 20]), b"4096");
/// ```
pub fn digits(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_width_is_written_as_display_writes_it() {
        for n in [0, 7, 10, 99, 4096, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(super::digits(n, &mut [0; 20]), n.to_string().as_bytes());
        }
    }
}
