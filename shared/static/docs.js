/* The set-up of Swagger UI at /docs, a script of its own (the page's CSP is
   script-src 'self'). The OpenAPI document's address is the page's to say
   (data-openapi-url on #swagger-ui).

   AccessibleMarkup changes, through Swagger UI's plugin API, the markup that axe-core
   finds wanting (tests/e2e/test_docs_page.py); colours and target sizes are in
   /docs/mkutano.css. */
(function () {
  "use strict";

  function AccessibleMarkup(system) {
    var h = system.React.createElement;
    return {
      wrapComponents: {
        // Swagger UI goes from the title's h1 to an h3 for each tag: an h2 (read by
        // screen readers, not shown) heads the operations, so no heading level is skipped.
        operations: function (Original) {
          return function (props) {
            return h(
              system.React.Fragment,
              null,
              h("h2", { className: "mkutano-visually-hidden" }, "Operations"),
              h(Original, props)
            );
          };
        },
        // An operation's summary is one button; with deep linking its path is also a
        // link, a control inside a control. The path is shown as text: expanding the
        // operation still puts its deep link in the address bar, and the tag headings
        // keep their links.
        OperationSummaryPath: function (Original) {
          return function (props) {
            var operation = props.operationProps;
            return h(
              Original,
              operation
                ? Object.assign({}, props, {
                    operationProps: operation.set("isDeepLinkingEnabled", false),
                  })
                : props
            );
          };
        },
        // Every service names one server, its own origin ("/"): a drop-down of one
        // choice adds nothing (and Swagger UI's has no label). "Try it out" sends to
        // the document's first server when none is chosen. With more than one server
        // the drop-down is shown again (then it needs a label: the axe test will say).
        ServersContainer: function (Original) {
          return function (props) {
            var servers = props.specSelectors.servers();
            return servers && servers.size > 1 ? h(Original, props) : null;
          };
        },
      },
    };
  }

  // The Authorize dialog is drawn by Swagger UI's own components, which the plugin API
  // cannot reach one by one: it is mended when it appears. Its close button gets a name,
  // its headings take the levels that follow the page's title (it opens right after it),
  // and its Authorize buttons are named by the text they show.
  function mendDialog(node) {
    node.querySelectorAll(".modal-ux:not([role])").forEach(function (dialog) {
      dialog.setAttribute("role", "dialog");
      dialog.setAttribute("aria-modal", "true");
      var title = dialog.querySelector(".modal-ux-header > h3");
      if (title) {
        title.id = title.id || "mkutano-authorize-title";
        dialog.setAttribute("aria-labelledby", title.id);
      }
    });
    node.querySelectorAll(".modal-ux .close-modal:not([aria-label])").forEach(function (b) {
      b.setAttribute("aria-label", "Close");
    });
    node.querySelectorAll(".modal-ux-header > h3:not([aria-level])").forEach(function (h) {
      h.setAttribute("aria-level", "2");
    });
    node.querySelectorAll(".modal-ux .auth-container h4:not([aria-level])").forEach(function (h) {
      h.setAttribute("aria-level", "3");
    });
    node.querySelectorAll(".modal-ux .auth-btn-wrapper button[aria-label]").forEach(function (b) {
      b.removeAttribute("aria-label");
    });
  }

  var root = document.getElementById("swagger-ui");
  new MutationObserver(function () {
    mendDialog(root);
  }).observe(root, { childList: true, subtree: true });
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [AccessibleMarkup],
  });
})();
