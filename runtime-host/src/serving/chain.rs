//! Linked chains: every component is instantiated on its own in the same store, and the host
//! satisfies each middleware's `wasi:http/handler@0.3.0` import by calling the next
//! instance's export.
//!
//! This is the alternative to composing the chain into one component with `wac-graph`
//! (`--chain composed`, what Spin does). Both give the same behaviour; they differ in how the
//! call between middleware and app is made, which is where a chain spends its time (see the
//! benchmark notes in the README).

use crate::serving::components::HANDLER;
use crate::serving::store::StoreState;
use anyhow::{Context, Result};
use std::sync::Arc;
use wasmtime::Store;
use wasmtime::component::{Accessor, Component, InstancePre, Linker, Resource};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p3::bindings::Service;
use wasmtime_wasi_http::p3::bindings::http::types::{ErrorCode, Request, Response};

/// Adds something to a linker (the upstream handler import).
pub type LinkerHook<'a> = &'a dyn Fn(&mut Linker<StoreState>) -> Result<()>;

/// Pre-instantiated components of a chain, outermost first; the last is the app (or, in
/// upstream mode, the innermost middleware, whose import the host provides).
pub struct LinkedPre {
    pres: Vec<InstancePre<StoreState>>,
}

impl LinkedPre {
    /// Prepares the chain. `innermost_import` adds what the last component imports as its
    /// handler (the upstream handler), if anything.
    pub fn new(
        base: &Linker<StoreState>,
        components: &[Component],
        innermost_import: Option<LinkerHook<'_>>,
    ) -> Result<Self> {
        let mut pres = Vec::with_capacity(components.len());
        for (i, component) in components.iter().enumerate() {
            let mut linker = base.clone();
            if i + 1 < components.len() {
                add_next_handler(&mut linker, i + 1)?;
            } else if let Some(add) = innermost_import {
                add(&mut linker)?;
            }
            pres.push(
                linker
                    .instantiate_pre(component)
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("component {} of the chain cannot run here", i + 1))?,
            );
        }
        Ok(LinkedPre { pres })
    }

    /// Instantiates the chain into `store` (innermost first) and returns the outermost
    /// handler.
    pub async fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Service> {
        let mut services = Vec::with_capacity(self.pres.len());
        let mut outer = None;
        for (i, pre) in self.pres.iter().enumerate().rev() {
            let instance = pre.instantiate_async(&mut *store).await?;
            services.push(Arc::new(Service::new(&mut *store, &instance)?));
            if i == 0 {
                outer = Some(Service::new(&mut *store, &instance)?);
            }
        }
        services.reverse();
        store.data_mut().chain = services;
        Ok(outer.expect("a chain has at least one component"))
    }
}

/// Defines the `handle` import as a call into chain position `next`.
fn add_next_handler(linker: &mut Linker<StoreState>, next: usize) -> Result<()> {
    linker
        .instance(HANDLER)
        .and_then(|mut instance| {
            instance.func_wrap_concurrent(
                "handle",
                move |accessor: &Accessor<StoreState>, (request,): (Resource<Request>,)| {
                    Box::pin(async move {
                        let (service, request) = accessor.with(|mut access| {
                            let state = access.get();
                            let service = state.chain[next].clone();
                            state.http().table.delete(request).map(|r| (service, r))
                        })?;
                        let result: Result<Resource<Response>, ErrorCode> =
                            match service.handle(accessor, request).await? {
                                Ok(response) => Ok(accessor
                                    .with(|mut access| access.get().http().table.push(response))?),
                                Err(code) => Err(code),
                            };
                        Ok((result,))
                    })
                },
            )
        })
        .map_err(anyhow::Error::from)
        .context("linking a middleware to the next component")
}
