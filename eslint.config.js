// @ts-check
import js from "@eslint/js";
import prettier from "eslint-config-prettier";
import pluginVue from "eslint-plugin-vue";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: ["**/node_modules/**", "**/dist/**", ".docflow/**", "coverage/**", "test-results/**"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // Vue 3's recommended rules, as errors so that `npm run lint` fails on them.
  ...pluginVue.configs["flat/recommended-error"],
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "no-restricted-imports": [
        "error",
        {
          patterns: [{ group: ["**/services/*/**", "@docflow/gateway", "@docflow/processor"], message: "A service never imports another service; shared code goes into a package." }],
        },
      ],
    },
  },
  {
    // The web app runs in the browser: <script setup lang="ts"> is TypeScript, parsed by typescript-eslint inside vue-eslint-parser.
    files: ["services/web/src/**/*.{ts,vue}", "services/web/env.d.ts"],
    languageOptions: {
      globals: { ...globals.browser },
      parserOptions: { parser: tseslint.parser, extraFileExtensions: [".vue"] },
    },
  },
  {
    files: ["**/*.vue"],
    rules: {
      // vue-tsc checks names and types in .vue files, as tsc does in .ts (typescript-eslint's eslint-recommended).
      ...tseslint.configs.eslintRecommended.rules,
      // Layout: short elements stay on one line, as everywhere in the templates; long ones take one attribute a line.
      "vue/max-attributes-per-line": "off",
      "vue/singleline-html-element-content-newline": "off",
      // The templates' one style: void elements closed (`<input />`), empty HTML elements written out (`<div></div>`).
      "vue/html-self-closing": ["error", { html: { void: "always", normal: "never", component: "always" }, svg: "always", math: "always" }],
    },
  },
  {
    // The gateway answers probes on its event loop: it must never load the processor's engines.
    files: ["services/gateway/**/*.ts", "packages/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: ["sharp", "pdfjs-dist", "@embedpdf/pdfium", "@hyzyla/pdfium", "piscina"].map((name) => ({
            name,
            message: "Heavy engines belong to the processor, never to the gateway or shared packages.",
          })),
          patterns: [{ group: ["**/services/*/**", "@docflow/processor"], message: "A service never imports another service." }],
        },
      ],
    },
  },
  // Layout is Prettier's (npm run format): the rules it would fight with are off.
  prettier,
);
