// Tests read many JSON bodies whose shapes they then assert on: let response.json() be `any`
// in test code (source code keeps the strict `unknown`).
declare global {
  interface Response {
    json(): Promise<any>;
  }
}
export {};
