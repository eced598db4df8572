//! The `#[plugin]` attribute: turns one handler function into a Hookyard plugin export.

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemFn, parse_macro_input};

/// Marks `fn(Event) -> Result<Vec<Output>>` as the plugin's handler and exports it.
///
/// Use it once per plugin crate (a `cdylib` built for `wasm32-wasip2`).
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[plugin] takes no arguments",
        )
        .to_compile_error()
        .into();
    }
    let mut func = parse_macro_input!(item as ItemFn);
    // Natively nothing calls the handler except the author's own tests.
    func.attrs
        .push(syn::parse_quote!(#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]));
    let name = &func.sig.ident;
    let expanded = quote! {
        #func

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
            }

            ::hookyard_sdk::bindings::__export_plugin!(Plugin);
        }
    };
    expanded.into()
}
