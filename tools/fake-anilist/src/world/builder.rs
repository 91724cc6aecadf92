//! The state a world is built in: the rng, the id counters and the entries so far, and the
//! names and dates a franchise's members share. `generate.rs` and `shapes.rs` both build on it.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Entry, FuzzyDate, Relation, Title, relation};

const SEASONS: [&str; 4] = ["WINTER", "SPRING", "SUMMER", "FALL"];
const SYLLABLES: [&str; 16] = [
    "ka", "ze", "no", "so", "ra", "hi", "mi", "tsu", "ki", "yo", "ru", "ma", "ho", "shi", "ne",
    "ta",
];
const KANA: [&str; 16] = [
    "カ", "ゼ", "ノ", "ソ", "ラ", "ヒ", "ミ", "ツ", "キ", "ヨ", "ル", "マ", "ホ", "シ", "ネ", "タ",
];

/// Mutable state while building: the rng, id counters and the entries so far.
pub struct Gen {
    pub rng: ChaCha8Rng,
    pub entries: BTreeMap<i32, Entry>,
    pub(super) next_id: i32,
    pub(super) next_edge: i32,
    pub(super) cross_links: usize,
}

/// The naming and dating a franchise's members share.
pub struct Family {
    pub romaji: String,
    pub native: String,
    pub english: Option<String>,
    pub year: i32,
}

impl Gen {
    pub fn family(&mut self) -> Family {
        let words = self.rng.random_range(2..=3);
        let (mut romaji, mut native) = (String::new(), String::new());
        for w in 0..words {
            if w > 0 {
                romaji.push(' ');
            }
            for s in 0..self.rng.random_range(2..=3) {
                let i = self.rng.random_range(0..SYLLABLES.len());
                let syl = SYLLABLES[i];
                if s == 0 {
                    romaji.extend(syl.chars().take(1).flat_map(char::to_uppercase));
                    romaji.push_str(&syl[1..]);
                } else {
                    romaji.push_str(syl);
                }
                native.push_str(KANA[i]);
            }
        }
        let english = (self.rng.random::<f64>() < 0.6).then(|| format!("The {romaji}"));
        Family {
            romaji,
            native,
            english,
            year: self.rng.random_range(1975..=2024),
        }
    }

    /// A new ANIME entry; `n` orders it within the family (later ones start later).
    pub fn anime(&mut self, family: &Family, suffix: &str, format: &str, n: usize) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        let year = family.year + (n as i32) / 2;
        let unreleased = year > 2025 || self.rng.random::<f64>() < 0.02;
        let season_i = self.rng.random_range(0..4);
        let episodes = match format {
            "TV" => [12, 13, 24, 25, 26][self.rng.random_range(0..5)],
            "TV_SHORT" => 12,
            "ONA" => self.rng.random_range(6..=13),
            "OVA" => self.rng.random_range(1..=6),
            "SPECIAL" => self.rng.random_range(1..=3),
            _ => 1,
        };
        let romaji = if suffix.is_empty() {
            family.romaji.clone()
        } else {
            format!("{} {suffix}", family.romaji)
        };
        let entry = Entry {
            id,
            id_mal: (self.rng.random::<f64>() < 0.85).then_some(id + 30_000),
            media_type: Some("ANIME".into()),
            format: Some(format.into()),
            status: Some(
                if unreleased {
                    "NOT_YET_RELEASED"
                } else {
                    "FINISHED"
                }
                .into(),
            ),
            episodes: (!unreleased).then_some(episodes),
            season: (!unreleased).then(|| SEASONS[season_i].to_string()),
            season_year: (!unreleased).then_some(year),
            start_date: if unreleased {
                FuzzyDate::default()
            } else {
                FuzzyDate {
                    year: Some(year),
                    month: Some(season_i as i32 * 3 + 1),
                    day: Some(self.rng.random_range(1..=28)),
                }
            },
            title: Title {
                user_preferred: Some(romaji.clone()),
                romaji: Some(romaji),
                english: family
                    .english
                    .as_ref()
                    .map(|e| format!("{e} {suffix}").trim().to_string()),
                native: Some(format!("{}{}", family.native, n + 1)),
            },
            is_adult: false,
            dead: false,
            relations: Vec::new(),
        };
        self.entries.insert(id, entry);
        id
    }

    /// A MANGA-type source entry (format MANGA or NOVEL).
    pub fn source(&mut self, family: &Family) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        let format = if self.rng.random::<f64>() < 0.8 {
            "MANGA"
        } else {
            "NOVEL"
        };
        let entry = Entry {
            id,
            id_mal: Some(id + 60_000),
            media_type: Some("MANGA".into()),
            format: Some(format.into()),
            status: Some("FINISHED".into()),
            start_date: FuzzyDate {
                year: Some(family.year - 2),
                month: None,
                day: None,
            },
            title: Title {
                romaji: Some(family.romaji.clone()),
                english: family.english.clone(),
                native: Some(family.native.clone()),
                user_preferred: Some(family.romaji.clone()),
            },
            ..Entry::default()
        };
        self.entries.insert(id, entry);
        id
    }

    /// Adds `from -rel-> to` and the inverse edge AniList would show on `to`.
    pub fn link(&mut self, from: i32, rel: &str, to: i32) {
        self.edge(from, rel, to);
        if let Some(inv) = relation::inverse(rel) {
            self.edge(to, inv, from);
        }
    }

    fn edge(&mut self, from: i32, rel: &str, to: i32) {
        let edge_id = self.next_edge;
        self.next_edge += 1;
        if let Some(e) = self.entries.get_mut(&from) {
            e.relations.push(Relation {
                edge_id,
                relation_type: rel.to_string(),
                target: to,
            });
        }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }
}
