// Stylesheets are imported as text (webpack's asset/source).
declare module '*.css' {
  const text: string;
  export default text;
}
