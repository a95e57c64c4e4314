// Starts Swagger UI on /docs from the files shipped beside this one (no CDN).
// A separate file rather than an inline script, so that a strict
// Content-Security-Policy (script-src 'self') still lets the page run.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",  // relative: /docs -> /openapi.json, also behind a path prefix
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,  // the default would send the document to validator.swagger.io
    tryItOutEnabled: false,
  });
});
