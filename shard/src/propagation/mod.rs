//! Object propagation: selectors, canonical copies, the forest cache and the planner.
