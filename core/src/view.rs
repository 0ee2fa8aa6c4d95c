//! What an app that follows only some events should show: the one definition the Hub (which
//! sends each subscriber what it needs to get there) and the follower (which reads the Hub's
//! current context through that lens) share.
//!
//! An app shows the context it was last given. The Hub's current context is an open event
//! (say `DiagnosticReport-open` of report `r` for patient `p`, study `s`). For an app that
//! follows `DiagnosticReport-open`, the view is that report. For one that does not, the view
//! is the most specific context the report implies among those it follows (req 97): the study
//! for an app of `ImagingStudy-open`, else the encounter, else the patient. For an app that
//! follows none of them, and whenever the Hub has no current context (closed, `Home-open`,
//! `UserLogout`), the view is empty: such an app must show no context, and the Hub tells it
//! so with a close of what it showed (ARCHITECTURE.md, "views").

use crate::catalog::{EventKind, EventName};
use crate::event::Event;
use crate::wire::{ContextEntry, ResourceKey, ValueField};

/// The view of an app: the open it should have applied last.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// The open event's name (e.g. `Patient-open`).
    pub name: EventName,
    /// Its anchor.
    pub anchor: ResourceKey,
    /// Its context: the current open's own context, or the implied open's (anchor first).
    pub context: Vec<ContextEntry>,
}

/// The view of an app following `granted` when the Hub's current context is the open
/// `current` (`None`: no current context).
pub fn view_of(granted: &[EventName], current: Option<&Event>) -> Option<View> {
    let current = current?;
    view_of_context(granted, &current.name, &current.context)
}

/// [`view_of`] for a current context known by its open's name and context (a
/// get-current-context answer).
pub fn view_of_context(granted: &[EventName], name: &EventName, context: &[ContextEntry]) -> Option<View> {
    if granted.contains(name) {
        let key = name.anchor_key()?;
        let anchor = context.iter().find(|e| e.key == key).and_then(key_of)?;
        return Some(View { name: name.clone(), anchor, context: context.to_vec() });
    }
    implied(name, context).into_iter().rev().find(|(n, _)| granted.contains(n)).and_then(|(name, context)| {
        let anchor = key_of(context.first()?)?;
        Some(View { name, anchor, context })
    })
}

/// The anchor a resource entry names (`Type/id`), when it is a full resource with an id.
pub(crate) fn key_of(entry: &ContextEntry) -> Option<ResourceKey> {
    let h = entry.resource_header()?;
    Some(ResourceKey::new(h.resource_type, h.id?))
}

/// The opens an open event implies (req 97), least specific first: `Patient-open` for its
/// patient, `Encounter-open` for its encounter (with the patient), and `ImagingStudy-open`
/// for each study (with encounter and patient when present). Only full resources with an id
/// count; the event's own type is not implied by itself.
pub fn implied_opens(source: &Event) -> Vec<(EventName, Vec<ContextEntry>)> {
    implied(&source.name, &source.context)
}

fn implied(name: &EventName, context: &[ContextEntry]) -> Vec<(EventName, Vec<ContextEntry>)> {
    let own = name.resource_type();
    let entries = |key: &'static str| context.iter().filter(move |e| e.key == key);
    let resource = |key: &'static str, rt: &str| {
        entries(key)
            .find(|e| {
                e.field == ValueField::Resource
                    && e.resource_header().is_some_and(|h| h.resource_type == rt && h.id.is_some())
            })
            .cloned()
    };
    let patient = resource("patient", "Patient");
    let encounter = resource("encounter", "Encounter");
    let mut out = Vec::new();
    let open = |rt: &str| EventName::of(rt, EventKind::Open).expect("catalogued types");
    if own != Some("Patient") {
        if let Some(p) = &patient {
            out.push((open("Patient"), vec![p.clone()]));
        }
    }
    if own != Some("Encounter") {
        if let (Some(e), Some(p)) = (&encounter, &patient) {
            out.push((open("Encounter"), vec![e.clone(), p.clone()]));
        }
    }
    if own != Some("ImagingStudy") {
        for s in entries("study") {
            if s.field != ValueField::Resource
                || !s.resource_header().is_some_and(|h| h.resource_type == "ImagingStudy" && h.id.is_some())
            {
                continue;
            }
            let mut ctx = vec![s.clone()];
            ctx.extend(encounter.clone());
            ctx.extend(patient.clone());
            out.push((open("ImagingStudy"), ctx));
        }
    }
    out
}
