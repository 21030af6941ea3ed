// placeholder
export default {};
