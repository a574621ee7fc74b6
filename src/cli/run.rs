//! `bma run`: search, train, rank and report. (Filled in by the search engine work.)
