/** Jest runs the TypeScript suites under test/ts through ts-jest. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test/ts'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', isolatedModules: true }] },
  testTimeout: 60000,
};
