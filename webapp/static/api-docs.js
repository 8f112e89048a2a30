/* The /api/docs page: Swagger UI on the served OpenAPI document (a static file: no inline script). */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("api-docs");
    window.SwaggerUIBundle({ url: root.dataset.spec, domNode: root, deepLinking: true });
  });
})();
