// Generates typed documents for the operations in src/operations/ into
// src/gql/, checked against the server's schema, and the persisted-document
// manifest src/gql/persisted-documents.json (sha256 hash -> document text)
// that the server accepts as its trusted documents (TRUSTED_DOCUMENTS).
// An operation that does not match the schema fails the generation.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: process.env.CONDUIT_SCHEMA ?? '../../schema.graphql',
  documents: ['src/operations/**/*.graphql'],
  ignoreNoDocuments: false,
  errorsOnly: false,
  generates: {
    './src/gql/': {
      preset: 'client',
      presetConfig: {
        fragmentMasking: false,
        persistedDocuments: { hashAlgorithm: 'sha256' },
      },
      config: {
        scalars: { DateTime: 'string' },
        strictScalars: true,
        enumsAsTypes: true,
        useTypeImports: true,
        skipTypename: true,
      },
    },
  },
};

export default config;
