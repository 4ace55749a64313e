// This API's own document only: no URL bar to load others (BaseLayout), and no call to the
// public validator (validatorUrl: null), which would send the document's URL off-site and
// show a broken badge offline.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/docs/swagger.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
