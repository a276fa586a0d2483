// The entry point `@autobus/discovery/internal`: pieces the other Autobus
// packages build on, kept out of the package's documented surface. They
// follow the packages that use them and may change in any release.
export { serviceChanges } from './changes.js'
