// @ts-check
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: ["**/node_modules/**", "**/dist/**", "services/web/**", "!services/web/server.ts", ".docflow/**", "coverage/**", "test-results/**"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["**/services/*/**", "@docflow/gateway", "@docflow/processor"], message: "A service never imports another service; shared code goes into a package." },
          ],
        },
      ],
    },
  },
  {
    // The gateway answers probes on its event loop: it must never load the processor's engines.
    files: ["services/gateway/**/*.ts", "packages/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: ["sharp", "pdfjs-dist", "@embedpdf/pdfium", "@hyzyla/pdfium", "piscina"].map((name) => ({ name, message: "Heavy engines belong to the processor, never to the gateway or shared packages." })),
          patterns: [{ group: ["**/services/*/**", "@docflow/processor"], message: "A service never imports another service." }],
        },
      ],
    },
  },
);
