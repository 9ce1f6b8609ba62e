// Swagger UI for this server's own OpenAPI document; nothing is fetched from elsewhere
// (validatorUrl: null turns off the badge that would ask an outside validator).
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  displayRequestDuration: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
