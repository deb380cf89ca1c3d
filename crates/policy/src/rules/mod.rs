//! Legal rules shipped as data with their source and date: adequacy lists,
//! bank-holiday calendars, and the statutory deadlines computed from them.

pub mod adequacy;
pub mod calendar;
pub mod deadline;
