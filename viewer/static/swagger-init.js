// Starts the vendored Swagger UI on /docs (kept out of the page so the strict CSP needs no inline script).
window.addEventListener("DOMContentLoaded", function () {
  window.SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
});
