//! Quantities of an HRQ's status as upstream's `hrq` command prints them: parsed and printed back canonically
//! (`1.5` as `1500m`, `1024Mi` as `1Gi`; [`hnc_api::quantity`]).

use hnc_api::hrq::Quantity;

/// The canonical text of a quantity as stored in an HRQ.
pub fn canonical_quantity(q: &Quantity) -> String {
    match q {
        Quantity::Int(i) => canonical(&i.to_string()),
        Quantity::String(s) => canonical(s),
    }
}

pub use hnc_api::quantity::canonical;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_strings_of_an_hrq() {
        assert_eq!(canonical_quantity(&Quantity::Int(3000)), "3k");
        assert_eq!(canonical_quantity(&Quantity::String("1.5".into())), "1500m");
        assert_eq!(canonical_quantity(&Quantity::String("lots".into())), "lots");
    }
}
