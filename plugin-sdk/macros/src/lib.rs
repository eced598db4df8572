//! The `#[plugin]` attribute: turns one handler function into a Hookyard plugin export.

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemFn, parse_macro_input};

/// Marks `fn(Event) -> Result<Vec<Output>>` as the plugin's handler and exports it.
///
/// Use it once per plugin crate (a `cdylib` built for `wasm32-wasip2`). With
/// `#[plugin(validate = my_check)]`, `fn my_check() -> Result<()>` checks the plugin's config
/// when the router loads it (`hookyard check`, start-up, reload).
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    let validate = match parse_validate(attr) {
        Ok(v) => v,
        Err(e) => return e.to_compile_error().into(),
    };
    let (validate_body, validate_native) = match validate {
        Some(path) => (
            quote! { super::#path() },
            // Natively nothing else calls it; this keeps it type-checked and "used".
            quote! {
                #[cfg(not(target_arch = "wasm32"))]
                const _: fn() -> ::core::result::Result<(), ::hookyard_sdk::Error> = #path;
            },
        ),
        None => (quote! { ::core::result::Result::Ok(()) }, quote! {}),
    };
    let mut func = parse_macro_input!(item as ItemFn);
    // Natively nothing calls the handler except the author's own tests.
    func.attrs
        .push(syn::parse_quote!(#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]));
    let name = &func.sig.ident;
    let expanded = quote! {
        #func

        #validate_native

        // Only a wasm build exports the handler: natively the crate is a plain library, so
        // its logic can be unit-tested and benchmarked, and several plugins can be linked.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __hookyard_plugin_export {
            pub struct Plugin;

            impl ::hookyard_sdk::bindings::Guest for Plugin {
                fn handle(
                    event: ::hookyard_sdk::Event,
                ) -> ::core::result::Result<::std::vec::Vec<::hookyard_sdk::Output>, ::hookyard_sdk::Error> {
                    super::#name(event)
                }

                fn validate() -> ::core::result::Result<(), ::hookyard_sdk::Error> {
                    #validate_body
                }
            }

            ::hookyard_sdk::bindings::__export_plugin!(Plugin);
        }
    };
    expanded.into()
}

/// Parses `validate = path` (the only argument `#[plugin]` takes).
fn parse_validate(attr: TokenStream) -> syn::Result<Option<syn::Path>> {
    if attr.is_empty() {
        return Ok(None);
    }
    let meta: syn::MetaNameValue = syn::parse(attr)?;
    if !meta.path.is_ident("validate") {
        return Err(syn::Error::new_spanned(
            meta.path,
            "#[plugin] takes only `validate = function`",
        ));
    }
    match meta.value {
        syn::Expr::Path(p) => Ok(Some(p.path)),
        other => Err(syn::Error::new_spanned(
            other,
            "validate takes a function name",
        )),
    }
}
