//! Human units for scheduler messages, in lain.yaml's own notation
//! (`512m`, `1.5g`; CPU in cores), so an operator can compare a message
//! with the `memory:` and `cpu:` lines of the app's lain.yaml.

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Formats bytes as `2g`, `1.5g`, `512m`, `1.25t` or `64k`.
///
/// Fractions are truncated to two decimals, never rounded up, so a free
/// amount is never shown larger than it is.
pub fn memory(bytes: u64) -> String {
    let (unit, suffix) = if bytes >= TIB {
        (TIB, 't')
    } else if bytes >= GIB {
        (GIB, 'g')
    } else if bytes >= MIB {
        (MIB, 'm')
    } else if bytes >= KIB {
        (KIB, 'k')
    } else if bytes == 0 {
        return "0m".to_owned();
    } else {
        return format!("{bytes}b");
    };
    // u128: bytes * 100 overflows u64 near the top of the range.
    let hundredths = u128::from(bytes) * 100 / u128::from(unit);
    decimal(hundredths / 100, hundredths % 100, 2) + &suffix.to_string()
}

/// Formats thousandths of a core as `1 cpu`, `0.5 cpu`, `2 cpus`,
/// `1.25 cpus`.
pub fn cpu(millis: u64) -> String {
    let text = decimal(u128::from(millis / 1000), u128::from(millis % 1000), 3);
    if millis <= 1000 {
        format!("{text} cpu")
    } else {
        format!("{text} cpus")
    }
}

/// `int.frac` with `digits` fraction digits, trailing zeros dropped.
fn decimal(int: u128, frac: u128, digits: usize) -> String {
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0digits$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(memory(2 * GIB), "2g");
        assert_eq!(memory(3 * GIB / 2), "1.5g");
        assert_eq!(memory(512 * MIB), "512m");
        assert_eq!(memory(32 * MIB), "32m");
        assert_eq!(memory(GIB + GIB / 4), "1.25g");
        // 1.999g is shown as 1.99g, not rounded up to 2g.
        assert_eq!(memory(2 * GIB - 1), "1.99g");
        assert_eq!(memory(64 * KIB), "64k");
        assert_eq!(memory(100), "100b");
        assert_eq!(memory(0), "0m");
        assert_eq!(memory(3 * TIB), "3t");
        // The top of the range does not overflow.
        assert_eq!(memory(u64::MAX), "16777215.99t");
    }

    #[test]
    fn cpu_units() {
        assert_eq!(cpu(1000), "1 cpu");
        assert_eq!(cpu(500), "0.5 cpu");
        assert_eq!(cpu(250), "0.25 cpu");
        assert_eq!(cpu(2000), "2 cpus");
        assert_eq!(cpu(1500), "1.5 cpus");
        assert_eq!(cpu(1), "0.001 cpu");
        assert_eq!(cpu(0), "0 cpu");
    }
}
