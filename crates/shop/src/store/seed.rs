//! The catalog every fresh database starts with: a few dozen products in six categories,
//! shared by all backends.

/// One product to insert on first start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeedProduct {
    pub(crate) sku: &'static str,
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) category: &'static str,
    pub(crate) price_cents: i64,
    pub(crate) stock: i64,
}

const fn product(
    sku: &'static str,
    name: &'static str,
    description: &'static str,
    category: &'static str,
    price_cents: i64,
    stock: i64,
) -> SeedProduct {
    SeedProduct {
        sku,
        name,
        description,
        category,
        price_cents,
        stock,
    }
}

/// The seed catalog, in id order.
pub(crate) const PRODUCTS: &[SeedProduct] = &[
    product(
        "COF-001",
        "Ethiopia Yirgacheffe",
        "Washed light roast with jasmine and lemon notes. 250 g whole beans.",
        "coffee",
        1450,
        120,
    ),
    product(
        "COF-002",
        "Colombia Huila",
        "Balanced medium roast, caramel and red apple. 250 g whole beans.",
        "coffee",
        1250,
        140,
    ),
    product(
        "COF-003",
        "Sumatra Mandheling",
        "Earthy dark roast with cedar and cocoa. 250 g whole beans.",
        "coffee",
        1350,
        80,
    ),
    product(
        "COF-004",
        "House Espresso Blend",
        "Chocolate-forward blend made for milk drinks. 1 kg whole beans.",
        "coffee",
        3200,
        60,
    ),
    product(
        "COF-005",
        "Decaf Mexico Chiapas",
        "Swiss-water decaf, nutty and sweet. 250 g whole beans.",
        "coffee",
        1300,
        45,
    ),
    product(
        "COF-006",
        "Kenya AA Nyeri",
        "Bright and juicy, blackcurrant and grapefruit. 250 g whole beans.",
        "coffee",
        1650,
        30,
    ),
    product(
        "TEA-001",
        "Darjeeling First Flush",
        "Floral spring harvest black tea. 100 g loose leaf.",
        "tea",
        1800,
        50,
    ),
    product(
        "TEA-002",
        "Sencha Asamushi",
        "Lightly steamed Japanese green tea. 100 g loose leaf.",
        "tea",
        1500,
        70,
    ),
    product(
        "TEA-003",
        "Earl Grey Supreme",
        "Black tea with bergamot and cornflower. 100 g loose leaf.",
        "tea",
        950,
        110,
    ),
    product(
        "TEA-004",
        "Tieguanyin Oolong",
        "Rolled oolong with orchid aroma. 100 g loose leaf.",
        "tea",
        2100,
        40,
    ),
    product(
        "TEA-005",
        "Rooibos Vanilla",
        "Caffeine-free red bush with vanilla. 100 g loose leaf.",
        "tea",
        800,
        90,
    ),
    product(
        "TEA-006",
        "Matcha Ceremonial",
        "Stone-ground shade-grown tencha. 30 g tin.",
        "tea",
        2600,
        35,
    ),
    product(
        "KIT-001",
        "Pour-over Dripper",
        "Ceramic cone dripper for one to two cups.",
        "kitchen",
        2400,
        55,
    ),
    product(
        "KIT-002",
        "Gooseneck Kettle",
        "Stovetop kettle with a precise spout. 1 l.",
        "kitchen",
        4500,
        25,
    ),
    product(
        "KIT-003",
        "Burr Grinder",
        "Hand grinder with steel conical burrs.",
        "kitchen",
        8900,
        15,
    ),
    product(
        "KIT-004",
        "Digital Scale",
        "0.1 g resolution with a built-in timer.",
        "kitchen",
        2900,
        40,
    ),
    product(
        "KIT-005",
        "Paper Filters",
        "Pack of 100 unbleached cone filters.",
        "kitchen",
        600,
        300,
    ),
    product(
        "KIT-006",
        "Glass Teapot",
        "Borosilicate teapot with a steel infuser. 800 ml.",
        "kitchen",
        3400,
        20,
    ),
    product(
        "BOO-001",
        "The World Atlas of Coffee",
        "From beans to brewing, coffees explored, explained and enjoyed.",
        "books",
        3500,
        18,
    ),
    product(
        "BOO-002",
        "The Tea Book",
        "A visual guide to varieties, blends and rituals.",
        "books",
        2200,
        22,
    ),
    product(
        "BOO-003",
        "Water for Coffee",
        "The chemistry of brewing water, for the curious.",
        "books",
        4000,
        8,
    ),
    product(
        "BOO-004",
        "Everything but Espresso",
        "Brewing methods beyond the espresso machine.",
        "books",
        2800,
        12,
    ),
    product(
        "BOO-005",
        "Steeped",
        "Recipes and stories around a pot of tea.",
        "books",
        2500,
        14,
    ),
    product(
        "BOO-006",
        "The Professional Barista's Handbook",
        "Technique and theory behind the bar.",
        "books",
        4500,
        6,
    ),
    product(
        "STA-001",
        "Tasting Notebook",
        "Dot-grid notebook with cupping forms. A5.",
        "stationery",
        1400,
        75,
    ),
    product(
        "STA-002",
        "Flavour Wheel Poster",
        "The coffee taster's flavour wheel. 50 x 70 cm.",
        "stationery",
        1800,
        40,
    ),
    product(
        "STA-003",
        "Brew Ratio Cards",
        "Pocket cards for common brew recipes. Set of 12.",
        "stationery",
        700,
        150,
    ),
    product(
        "STA-004",
        "Letterpress Greeting Card",
        "Blank card with a coffee plant illustration.",
        "stationery",
        450,
        200,
    ),
    product(
        "STA-005",
        "Fountain Pen",
        "Steel nib pen for notes that last.",
        "stationery",
        3900,
        10,
    ),
    product(
        "STA-006",
        "Washi Tape Set",
        "Three rolls in roast colours.",
        "stationery",
        650,
        120,
    ),
    product(
        "GAR-001",
        "Coffee Plant Seedling",
        "Coffea arabica in a 12 cm pot.",
        "garden",
        1900,
        25,
    ),
    product(
        "GAR-002",
        "Camellia Sinensis Shrub",
        "Grow your own tea. 2 l pot.",
        "garden",
        2700,
        15,
    ),
    product(
        "GAR-003",
        "Compost Caddy",
        "For grounds and leaves; charcoal filter lid. 5 l.",
        "garden",
        2300,
        35,
    ),
    product(
        "GAR-004",
        "Mint Seeds",
        "Moroccan mint for fresh tea. One packet.",
        "garden",
        300,
        400,
    ),
    product(
        "GAR-005",
        "Terracotta Planter",
        "Hand-thrown pot with saucer. 18 cm.",
        "garden",
        1600,
        30,
    ),
    product(
        "GAR-006",
        "Watering Can",
        "Long-spout galvanised steel can. 1.5 l.",
        "garden",
        2900,
        0,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn seed_skus_are_unique_and_values_valid() {
        let skus: HashSet<&str> = PRODUCTS.iter().map(|p| p.sku).collect();
        assert_eq!(skus.len(), PRODUCTS.len());
        assert!(PRODUCTS.len() >= 24);
        assert!(PRODUCTS.iter().all(|p| p.price_cents >= 0 && p.stock >= 0));
        let categories: HashSet<&str> = PRODUCTS.iter().map(|p| p.category).collect();
        assert!(categories.len() >= 4);
    }
}
