//! Column alignment exactly as Go's `text/tabwriter` lays out a table whose rows all have the same number of
//! cells — the layout of upstream's `describe` events table and of `hrq` (kubectl's table printer).
//!
//! Go's rule: every cell but the last of a row is padded to its column's width, which is the widest cell of the
//! column plus `padding`, and at least `min_width`; the last cell of a row is written as is. So a row whose last
//! cell is empty still ends in the padding of the one before it — kubectl's output has the same trailing spaces.
//! Widths are counted in characters (Go counts runes).

/// Collects rows, then lays them out.
#[derive(Debug)]
pub struct TabWriter {
    min_width: usize,
    padding: usize,
    rows: Vec<Vec<String>>,
}

impl TabWriter {
    /// Go's `tabwriter.NewWriter(out, minwidth, _, padding, ' ', 0)`.
    pub fn new(min_width: usize, padding: usize) -> Self {
        TabWriter { min_width, padding, rows: Vec::new() }
    }

    /// Adds a row of cells (what Go writes as cells separated by `\t`, ended by `\n`).
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The aligned table, one `\n`-terminated line per row.
    pub fn finish(self) -> String {
        let mut widths: Vec<usize> = Vec::new();
        for row in &self.rows {
            // The last cell of a row belongs to no column.
            for (column, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
                let width = (cell.chars().count() + self.padding).max(self.min_width);
                match widths.get_mut(column) {
                    Some(w) => *w = (*w).max(width),
                    None => widths.push(width),
                }
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if column + 1 < row.len() {
                    let pad = widths[column] - cell.chars().count();
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_every_column_but_the_last_to_widest_plus_padding() {
        let mut w = TabWriter::new(0, 1);
        w.row(["Last Seen", "Reason", "Object", "Message"]);
        w.row(["5s", "CannotPropagateObject", "Secret:a/s", "could not"]);
        assert_eq!(
            w.finish(),
            "Last Seen Reason                Object     Message\n\
             5s        CannotPropagateObject Secret:a/s could not\n"
        );
    }

    #[test]
    fn min_width_and_an_empty_last_cell_keep_the_padding_before_it() {
        let mut w = TabWriter::new(6, 3);
        w.row(["NAME", "AGE", "REQUEST", "LIMIT"]);
        w.row(["q", "5m", "cpu: 1/2", ""]);
        assert_eq!(w.finish(), "NAME   AGE   REQUEST    LIMIT\nq      5m    cpu: 1/2   \n");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut w = TabWriter::new(0, 1);
        w.row(["é", "x"]);
        w.row(["ab", "y"]);
        assert_eq!(w.finish(), "é  x\nab y\n");
    }
}
