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
    let func = parse_macro_input!(item as ItemFn);
    let name = &func.sig.ident;
    quote! {
        #func

        #[doc(hidden)]
        pub struct __HookyardPlugin;

        impl ::hookyard_sdk::bindings::Guest for __HookyardPlugin {
            fn handle(
                event: ::hookyard_sdk::Event,
            ) -> ::core::result::Result<::std::vec::Vec<::hookyard_sdk::Output>, ::hookyard_sdk::Error> {
                #name(event)
            }
        }

        ::hookyard_sdk::bindings::__export_plugin!(__HookyardPlugin);
    }
    .into()
}
